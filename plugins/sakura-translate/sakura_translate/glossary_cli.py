"""``sakura glossary``: candidate terms of a book or a game's files, written as a glossary to correct and pass to
``sakura translate --glossary``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from sakura_core.engine_command import CliState, OneLineUsageError
from sakura_translate.errors import GenerationError, InputError, zh
from sakura_translate.formats import LoadOptions, load_document
from sakura_translate.formats.galtransl import NotAScript
from sakura_translate.paths import plan_files
from sakura_translate.terms import Term, extract_terms, glossary_text

STYLES = {".txt": "txt", ".tsv": "tsv", ".json": "json"}


def read_lines(sources: tuple[Path, ...], encoding: str | None) -> list[str]:
    """Every text line of the files (or folders' files) ``sources``, through the formats ``sakura translate``
    reads; InputError for a file that does not read."""
    lines: list[str] = []
    for source in sources:
        plans = plan_files(source, None)
        for plan in plans:
            try:
                document = load_document(plan.source, LoadOptions(encoding=encoding))
            except NotAScript:
                if source.is_dir():
                    continue
                raise
            lines.extend(text for group in document.groups for text in group)
    return lines


@click.command(context_settings={"show_default": True})
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="FILE_OR_FOLDER...")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="The glossary to write.")
@click.option(
    "--format",
    "style",
    type=click.Choice(["txt", "tsv", "json"]),
    help="src->dst #note lines, TSV, or JSON.  [default: by the output's suffix, else txt]",
)
@click.option("--min-count", type=click.IntRange(min=1), default=3, help="Keep terms occurring this often.")
@click.option("--limit", type=click.IntRange(min=1), help="Keep at most this many terms.")
@click.option("--encoding", metavar="NAME", help="Text encoding of the inputs. Default: detected.")
@click.option("--translate", "translate_terms", is_flag=True, help="Translate the terms with the running server.")
@click.option("--server", metavar="URL", help="The server for --translate.  [default: http://127.0.0.1:8080]")
@click.option("--api-key", metavar="KEY", envvar="SAKURA_API_KEY", help="The server's key (env SAKURA_API_KEY).")
@click.option("--model-version", metavar="V", help="Sakura version (chooses the prompt for --translate).")
@click.pass_context
def glossary(ctx: click.Context, **params: Any) -> None:
    """Find the names and terms that recur in novels or game files (katakana runs, names before honorifics,
    repeated kanji compounds) and write them as a glossary, counted, most frequent first, each with an example
    line. Correct it, then pass it to `sakura translate --glossary`.

    \b
      sakura glossary book.txt -o names.txt
      sakura glossary game/ -o names.json --translate --server http://127.0.0.1:8080
    """
    output: Path = params["output"]
    style = params["style"] or STYLES.get(output.suffix.lower(), "txt")
    try:
        lines = read_lines(params["sources"], params["encoding"])
    except InputError as exc:
        raise OneLineUsageError(str(exc)) from None
    terms = extract_terms(lines, params["min_count"], params["limit"])
    if params["translate_terms"] and terms:
        state = ctx.find_object(CliState)
        assert state is not None
        try:
            asyncio.run(translate_terms(terms, params, state))
        except InputError as exc:
            raise OneLineUsageError(str(exc)) from None
        except GenerationError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        output.write_text(glossary_text(terms, style), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(zh(f"cannot write {output} ({exc.strerror or exc})", "无法写入术语表文件")) from None
    click.echo(
        f"{len(terms)} terms written to {output} ({style}); correct them, then: sakura translate --glossary {output}"
    )


async def translate_terms(terms: list[Term], params: dict[str, Any], state: CliState) -> None:
    """Each term's translation by the server, through the same pipeline (and checks) as a translation."""
    import tempfile

    from sakura_translate.backends import DEFAULT_SERVER, HttpBackend
    from sakura_translate.cache import ChunkCache
    from sakura_translate.formats.base import Document
    from sakura_translate.glossary import Glossary
    from sakura_translate.pipeline import Settings, Translator
    from sakura_translate.progress import Progress

    class TermList(Document):
        kind = "terms"

        def render(self, translations: Any, *, bilingual: bool = False, convert: Any = str) -> bytes:
            return b""

    backend = await HttpBackend.connect(
        params["server"] or DEFAULT_SERVER, params["api_key"], state.registry, params["model_version"]
    )
    try:
        document = TermList(Path("terms"), [[term.text for term in terms]])
        settings = Settings(chunk_chars=1, context="none")  # each term alone, no previous term as context
        progress = Progress(sum(len(t.text) for t in terms), len(terms), enabled=False)
        translator = Translator(backend, Glossary(), settings, backend.parallelism, progress)
        with tempfile.TemporaryDirectory() as folder:
            cache = ChunkCache(Path(folder) / "terms.jsonl")
            try:
                translations, _, _ = await translator.translate(document, cache)
            finally:
                cache.close()
        for term, translation in zip(terms, translations[0], strict=True):
            if translation and translation.strip():
                term.translation = translation.strip()
    finally:
        await backend.close()
