"""The entry point of sakura-translate: adds ``sakura translate`` to the command line."""

from __future__ import annotations

import click

from sakura_core import hookimpl

#: What ``sakura --help`` says of the command (its module stays unimported until it runs).
SHORT_HELP = "Translate novels, epubs, subtitles and game scripts into Chinese, with resume."


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``sakura translate``, imported (with ebooklib, pysubs2, OpenCC) only when it runs."""
    from sakura_core.cli import SakuraGroup

    if isinstance(cli, SakuraGroup):
        cli.add_lazy_command("translate", "sakura_translate.cli:translate", SHORT_HELP)
    else:  # a plain click group (embedding): add it directly
        from sakura_translate.cli import translate

        cli.add_command(translate)
