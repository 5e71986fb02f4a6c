"""The entry point of sakura-translate: adds ``sakura translate`` to the command line."""

from __future__ import annotations

import click

from sakura_core import hookimpl

#: What ``sakura --help`` says of the command (its module stays unimported until it runs).
SHORT_HELP = "Translate novels, epubs, subtitles and game scripts into Chinese, with resume."
GLOSSARY_HELP = "Find the recurring names and terms of books or game files and write them as a glossary."


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add ``sakura translate`` and ``sakura glossary``, imported (with ebooklib, pysubs2, OpenCC) only when they
    run."""
    from sakura_core.cli import SakuraGroup

    if isinstance(cli, SakuraGroup):
        cli.add_lazy_command("translate", "sakura_translate.cli:translate", SHORT_HELP)
        cli.add_lazy_command("glossary", "sakura_translate.glossary_cli:glossary", GLOSSARY_HELP)
    else:  # a plain click group (embedding): add them directly
        from sakura_translate.cli import translate
        from sakura_translate.glossary_cli import glossary

        cli.add_command(translate)
        cli.add_command(glossary)
