"""The entry point of sakura-translate: adds ``sakura translate`` to the command line."""

from __future__ import annotations

import click

from sakura_core import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``sakura translate``. Its libraries (ebooklib, pysubs2, OpenCC) are imported when it runs."""
    from sakura_translate.cli import translate

    cli.add_command(translate)
