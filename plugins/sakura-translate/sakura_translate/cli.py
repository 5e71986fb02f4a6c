"""``sakura translate``: the command, its options, and how failures become one line and an exit code."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from sakura_core.cli_options import build_options
from sakura_core.engine import ModelLoadError
from sakura_core.engine_command import CliState, EngineCommand, OneLineUsageError, peek_engine_name
from sakura_core.format_choice import UnknownModelVersionError
from sakura_core.types import SamplingParams
from sakura_translate.backends import DEFAULT_SERVER, Backend, EngineBackend, HttpBackend
from sakura_translate.cache import CACHE_SUFFIX
from sakura_translate.checks import OPTIONAL_CHECKS, CheckSettings, Reason
from sakura_translate.chunking import DEFAULT_CHUNK_CHARS
from sakura_translate.errors import GenerationError, InputError, zh
from sakura_translate.pipeline import CONTEXT_MODES, Settings
from sakura_translate.run import OPENCC_CONFIGS, Job, prepare, translate_files

#: Exit code after Ctrl-C, as shells report a process ended by SIGINT.
INTERRUPTED_EXIT_CODE = 130
_ENGINE_FLAGS = ("--engine", "-e", "--model", "-m")


class TranslateCommand(EngineCommand):
    """Loads an engine (and takes its options) only when the command line names one with --engine or --model.

    The engine runs in this process: options plugins add to ``sakura run`` to host it elsewhere do not apply.
    """

    takes_run_options = False

    def engine_name(self, args: list[str]) -> str | None:
        flags: tuple[str, ...] = _ENGINE_FLAGS
        prefixes: tuple[str, ...] = ("--engine=", "--model=")
        if any(arg == "--server" or arg.startswith("--server=") for arg in args):
            flags, prefixes = ("--engine", "-e"), ("--engine=",)  # --model then names one of the server's models
        asked = any(arg in flags or arg.startswith(prefixes) for arg in args)
        return peek_engine_name(args) if asked else None


@click.command(cls=TranslateCommand, context_settings={"show_default": True})
@click.argument("source", type=click.Path(path_type=Path), metavar="FILE_OR_FOLDER")
@click.option(
    "--output",
    "-o",
    help="Output file, or folder (an existing one, or a name ending with /). Default: NAME.zh.SUFFIX beside a file; "
    "NAME-zh beside a folder.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    help="In a folder, leave out files matching this pattern (path inside the folder or name). Repeatable.",
)
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist (otherwise they are kept).")
@click.option("--server", metavar="URL", help=f"A running sakura or llama-server.  [default: {DEFAULT_SERVER}]")
@click.option("--api-key", metavar="KEY", envvar="SAKURA_API_KEY", help="The server's key (env SAKURA_API_KEY).")
@click.option("--engine", "-e", metavar="NAME", help="Translate in-process with this engine (see `sakura engines`).")
@click.option(
    "--model",
    "-m",
    metavar="PATH_OR_TAG",
    help="The model for --engine (default engine: llamacpp); with --server, the id of the server's model to use.",
)
@click.option("--model-version", metavar="V", help="Sakura version (0.9, 0.10, 1.0, galtransl...): chooses the prompt.")
@click.option(
    "--glossary",
    "-g",
    "glossaries",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Glossary file: 'src->dst #note' lines, GalTransl's tab-separated dictionary, or books.fishhawk.top's "
    "JSON. Repeatable.",
)
@click.option("--chunk-chars", type=click.IntRange(min=1), default=DEFAULT_CHUNK_CHARS, help="Characters per request.")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    help="Tokens per answer. Default: chunk characters + 32, at least --chunk-chars.",
)
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.1, help="Sampling temperature.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.3, help="Nucleus sampling.")
@click.option("--greedy", is_flag=True, help="Greedy decoding (do_sample false).")
@click.option("--seed", type=int, help="Sampling seed.")
@click.option("--slots", type=click.IntRange(min=1), help="Chunks in flight. Default: the server's /slots.")
@click.option("--encoding", metavar="NAME", help="Text encoding of the inputs. Default: detected.")
@click.option("--bilingual", is_flag=True, help="Write each source line before its translation.")
@click.option("--traditional", is_flag=True, help="Also write a Traditional Chinese copy (NAME.zh-Hant.SUFFIX).")
@click.option("--opencc-config", type=click.Choice(OPENCC_CONFIGS), default="s2t", help="OpenCC conversion.")
@click.option("--titles", is_flag=True, help="EPUB: also translate the book title and table of contents.")
@click.option(
    "--no-check",
    "no_checks",
    multiple=True,
    type=click.Choice([str(reason) for reason in OPTIONAL_CHECKS]),
    help="Turn a check off (repeatable). A line failing a check is retried, split, then kept in the source.",
)
@click.option(
    "--kana-threshold",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of a line's letters that may stay kana (glossary names aside) before the line is retried.",
)
@click.option(
    "--context",
    type=click.Choice(CONTEXT_MODES),
    default="translation",
    help="What precedes each chunk in its prompt: the previous chunk's translation, its source text, or nothing.",
)
@click.option(
    "--halfwidth-digits/--keep-digits",
    default=True,
    help="Send full-width digits (０-９) as 0-9, as books.fishhawk.top does.",
)
@click.option("--keep-cache", is_flag=True, help=f"Keep the resume cache (*{CACHE_SUFFIX}) after success.")
@click.option("--report", "report_path", type=click.Path(path_type=Path), help="Also save the report as JSON.")
@click.option(
    "--log-level",
    default="warning",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Logging detail.",
)
@click.pass_context
def translate(ctx: click.Context, **params: Any) -> None:
    """Translate a novel (.txt, .epub), subtitles (.srt, .ass, .vtt), game and tool files (name/message, MTool and
    Paratranz JSON, Translator++ .trans, .xlsx, RPG Maker MV/MZ data, Ren'Py .rpy, .po, Markdown), or a folder of
    them (a whole RPG Maker game), into Chinese.

    \b
    Through a running server (the default, http://127.0.0.1:8080):
      sakura translate book.epub
    or with a model loaded here:
      sakura translate book.txt --engine llamacpp --model ./sakura-7b-qwen2.5-v1.0-iq4xs.gguf

    Interrupted? Run the same command again: finished chunks are not translated twice.
    """
    logging.basicConfig(level=getattr(logging, params["log_level"].upper()), format="%(levelname)s %(message)s")
    state = ctx.find_object(CliState)
    assert state is not None
    in_process = state.engine is not None
    if in_process and not params["model"]:
        raise OneLineUsageError(zh("--engine needs --model PATH_OR_TAG", "--engine 需要同时指定 --model"))
    if in_process and params["server"]:
        raise OneLineUsageError(
            zh(
                "--server and --engine/--model contradict each other: choose one",
                "--server 与 --engine/--model 不能同时使用",
            )
        )
    if state.engine_error:
        raise OneLineUsageError(state.engine_error)
    try:
        state.registry.check_model_version(params["model_version"])
    except UnknownModelVersionError as exc:
        raise OneLineUsageError(str(exc)) from None
    job = _job(params)
    try:
        prepared = prepare(job)
    except InputError as exc:
        raise OneLineUsageError(str(exc)) from None

    async def connect() -> Backend:
        if state.engine is None:
            return await HttpBackend.connect(
                params["server"] or DEFAULT_SERVER,
                params["api_key"],
                state.registry,
                params["model_version"],
                served_model=params["model"],
            )
        options = build_options(state.engine.engine_class.Options, ctx, state.engine_options)
        engine = state.engine.engine_class(options)  # type: ignore[arg-type]
        return await EngineBackend.load(engine, state.registry, params["model"], params["model_version"])

    try:
        report = asyncio.run(translate_files(job, prepared, connect))
    except InputError as exc:
        raise OneLineUsageError(str(exc)) from None
    except ModelLoadError as exc:
        raise click.ClickException(str(exc)) from None
    except GenerationError as exc:
        raise click.ClickException(
            f"{exc}; finished chunks are saved: run the same command again to continue"
        ) from None
    except KeyboardInterrupt:
        click.echo("interrupted: finished chunks are saved; run the same command again to continue", err=True)
        sys.exit(INTERRUPTED_EXIT_CODE)
    for line in report.lines():
        click.echo(line)
    if params["report_path"] is not None:
        try:
            params["report_path"].write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(
                f"cannot write the report {params['report_path']} ({exc.strerror or exc})"
            ) from None


def _job(params: dict[str, Any]) -> Job:
    sampling = SamplingParams(
        temperature=params["temperature"], top_p=params["top_p"], do_sample=not params["greedy"], seed=params["seed"]
    )
    checks = CheckSettings(
        kana_threshold=params["kana_threshold"], disabled=frozenset(Reason(name) for name in params["no_checks"])
    )
    settings = Settings(
        chunk_chars=params["chunk_chars"],
        params=sampling,
        max_tokens=params["max_tokens"],
        checks=checks,
        context=params["context"],
        halfwidth_digits=params["halfwidth_digits"],
    )
    output = params["output"]
    return Job(
        source=params["source"],
        output=Path(output) if output else None,
        output_is_folder=bool(output) and output.endswith(("/", os.sep)),
        overwrite=params["overwrite"],
        exclude=tuple(params["exclude"]),
        report=params["report_path"],
        glossaries=tuple(params["glossaries"]),
        settings=settings,
        slots=params["slots"],
        encoding=params["encoding"],
        titles=params["titles"],
        bilingual=params["bilingual"],
        traditional=params["opencc_config"] if params["traditional"] else None,
        keep_cache=params["keep_cache"],
    )
