"""``sakura run`` as users start it, with one more plugin: every prompt the engine gets is appended (one JSON line
each) to the file named by ``SAKURA_TEST_PROMPTS``. The browser tests start it as a subprocess:
``python recording_sakura.py run --model ...``."""

from __future__ import annotations

import json
import os
import sys

from sakura_core import hookimpl
from sakura_core.cli import cli
from sakura_core.engine_command import CliState
from sakura_core.plugins import PluginRegistry
from sakura_core.types import GenerationRequest, ModelInfo


class PromptLog:
    """Append each generation's prompt, as the engine gets it, to a JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path = path

    @hookimpl
    def before_generate(self, request: GenerationRequest, model: ModelInfo) -> None:
        """Record the prompt before the engine runs it."""
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"prompt": request.prompt}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    registry = PluginRegistry.create(plugins=[("prompt-log", PromptLog(os.environ["SAKURA_TEST_PROMPTS"]))])
    cli.main(sys.argv[1:], prog_name="sakura", obj=CliState(registry))
