"""Pull progress as ``ollama pull`` shows it: a status line per step and a progress bar per layer."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

BAR_WIDTH = 30
#: Seconds between two redraws on a terminal, and between two lines per layer in a log.
REDRAW_SECONDS = 0.1
LOG_SECONDS = 5.0


def human_bytes(count: int) -> str:
    """``1.2 GB``, ``340 MB``, ``12 KB``, ``512 B`` (decimal units, as Ollama prints them)."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns


@dataclass
class Layer:
    """One layer being pulled."""

    digest: str
    total: int = 0
    completed: int = 0
    last_logged: float = 0.0
    logged_done: bool = False

    @property
    def fraction(self) -> float:
        """Share of the layer downloaded, 0 to 1."""
        return min(self.completed / self.total, 1.0) if self.total else 0.0

    def line(self) -> str:
        """``pulling 6a0746a1ec1a:  45% ▕█████████████            ▏ 1.2 GB/2.7 GB``."""
        filled = round(self.fraction * BAR_WIDTH)
        bar = "█" * filled + " " * (BAR_WIDTH - filled)
        name = self.digest.removeprefix("sha256:")[:12]
        sizes = f"{human_bytes(self.completed)}/{human_bytes(self.total)}" if self.total else ""
        return f"pulling {name}: {self.fraction * 100:3.0f}% ▕{bar}▏ {sizes}".rstrip()


class PullProgress:
    """Renders the events of ``/api/pull`` (status, digest, total, completed) on a stream.

    On a terminal every layer keeps one line, redrawn in place; elsewhere (a log file, CI) each layer prints a line
    every few seconds and when it completes, so the output stays readable.
    """

    def __init__(self, stream: TextIO | None = None, *, interactive: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if interactive is None:
            isatty = getattr(self.stream, "isatty", None)
            interactive = bool(isatty and isatty())
        self.interactive = interactive
        self.layers: dict[str, Layer] = {}
        #: What is shown, in order: status lines (str) and layers.
        self.rows: list[str | Layer] = []
        self._drawn_lines = 0
        self._last_draw = 0.0

    def update(self, event: Any) -> None:
        """Take one progress event (the client's ProgressResponse or a dict)."""
        get = event.get if isinstance(event, dict) else lambda key: getattr(event, key, None)
        status = str(get("status") or "")
        digest = get("digest")
        if digest:
            layer = self.layers.get(digest)
            new = layer is None
            if layer is None:
                layer = self.layers[digest] = Layer(digest)
                self.rows.append(layer)
            layer.total = int(get("total") or layer.total or 0)
            layer.completed = int(get("completed") or layer.completed or 0)
            self._show_layer(layer, new=new)
        elif status and not (self.rows and self.rows[-1] == status):
            self.rows.append(status)
            self._show_status(status)

    def finish(self) -> None:
        """Draw the final state and end the last line."""
        if self.interactive:
            self._redraw(force=True)
        else:
            for layer in self.layers.values():
                if not layer.logged_done and layer.total and layer.completed >= layer.total:
                    self._write(layer.line() + "\n")
                    layer.logged_done = True
        self.stream.flush()

    def _show_layer(self, layer: Layer, *, new: bool) -> None:
        if self.interactive:
            self._redraw(force=new)
            return
        now = time.monotonic()
        done = bool(layer.total) and layer.completed >= layer.total
        if done and not layer.logged_done:
            layer.logged_done = True
            self._write(layer.line() + "\n")
        elif not done and now - layer.last_logged >= LOG_SECONDS:
            layer.last_logged = now
            self._write(layer.line() + "\n")

    def _show_status(self, status: str) -> None:
        if self.interactive:
            self._redraw(force=True)
        else:
            self._write(status + "\n")

    def _redraw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        lines = [row if isinstance(row, str) else row.line() for row in self.rows]
        up = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else ""
        self._write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self._drawn_lines = len(lines)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
