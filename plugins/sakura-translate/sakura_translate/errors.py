"""The two ways ``sakura translate`` fails: the user's input is wrong, or generating failed while running."""

from __future__ import annotations


def zh(english: str, chinese: str) -> str:
    """A message for the command line in English and Chinese, as the documentation is: the English line with
    its Chinese after it in full-width parentheses (file names and options are written once, in the English)."""
    return f"{english}（{chinese}）"


class InputError(ValueError):
    """Bad input: a missing or unreadable file, an undecodable text, a glossary line that does not parse, a server
    that cannot be reached. The message is one line that names the file (and line) and what to do; the command
    exits with code 2 and writes nothing."""


class GenerationError(RuntimeError):
    """Generating failed part-way (the server went away, the engine failed). Finished chunks are in the cache; the
    message says so, and the command exits with code 1."""


class ContextOverflow(GenerationError):
    """A chunk's prompt does not fit the model's context: the pipeline splits the chunk instead of failing."""
