"""The models one server serves: each loaded model with its own scheduler and service, found by id or alias.

A request's ``model`` picks one by its served id or an alias; ``""``, ``None`` and names no model answers to go to
the default model (the first added), as the clients that send ``"gpt-3.5-turbo"`` or nothing expect. With one model
the table holds one entry and every request goes to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sakura_core.loaded_model import LoadedModel
from sakura_core.server.generation.metrics import ServerMetrics
from sakura_core.server.generation.scheduler import Scheduler
from sakura_core.server.generation.service import GenerationService


@dataclass
class ServedModel:
    """One loaded model as the server serves it: its generation path, admission and the names it answers to."""

    model: LoadedModel
    scheduler: Scheduler
    service: GenerationService
    aliases: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        """The served id (``/v1/models`` ``id``)."""
        return self.model.info.id

    def answers_to(self, name: str) -> bool:
        """Whether a request's ``model`` names this model (its id, an alias, or the id with ``.gguf``)."""
        return name in (self.id, f"{self.id}.gguf") or name in self.aliases


class ModelTable:
    """The served models in order; the default one first."""

    def __init__(self) -> None:
        self._entries: list[ServedModel] = []

    def add(
        self, model: LoadedModel, metrics: ServerMetrics, max_queue: int, aliases: Sequence[str] = ()
    ) -> ServedModel:
        """Serve ``model`` (admitting up to its engine's parallelism); the first added is the default."""
        scheduler = Scheduler(model.engine.parallelism, max_queue)
        entry = ServedModel(model, scheduler, GenerationService(model, scheduler, metrics), tuple(aliases))
        self._entries.append(entry)
        return entry

    def set_default(self, name: str) -> None:
        """Make the model that answers to ``name`` the default (first); ``KeyError`` when none does."""
        for index, entry in enumerate(self._entries):
            if entry.answers_to(name):
                self._entries.insert(0, self._entries.pop(index))
                return
        raise KeyError(name)

    @property
    def default(self) -> ServedModel | None:
        """The model for requests that name none (None before any is added)."""
        return self._entries[0] if self._entries else None

    def find(self, name: str | None) -> ServedModel | None:
        """The model a request's ``model`` names, by id or alias; the default for ``""``, None or an unknown name."""
        if name:
            for entry in self._entries:
                if entry.answers_to(name):
                    return entry
        return self.default

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
