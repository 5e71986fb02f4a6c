"""Find the GGUF file behind ``--model``: a local file or directory, or a Hugging Face repository to download.

A repository is written ``OWNER/NAME`` with an optional ``:FILE.gguf`` or ``:QUANT`` after a colon, as llama-server's
``-hf`` takes it (``SakuraLLM/Sakura-1.5B-Qwen2.5-v1.0-GGUF:Q4_K_M``). Files are downloaded with huggingface_hub
into its standard cache (``HF_HOME``), with its progress bar, and found there again without network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from sakura_core.engine import ModelLoadError

logger = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
EXAMPLE_REPOSITORY = "SakuraLLM/Sakura-1.5B-Qwen2.5-v1.0-GGUF"
_REPOSITORY_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::(?P<spec>[^:/\\]+))?$")
_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
#: Quantisations tried, in order, when a repository is named without one (llama-server also prefers Q4_K_M).
PREFERRED_QUANTS = ("q4km", "iq4xs", "q4ks", "q5km", "q6k", "q80", "q4_0", "f16", "bf16")
#: What to do with a model that is no GGUF, such as a Transformers checkpoint (config.json and safetensors).
NOT_GGUF_HINT = (
    "the llamacpp engine loads .gguf models (convert others with llama.cpp's convert_hf_to_gguf.py, or serve "
    "Transformers checkpoints with --engine vllm)"
)


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def check_gguf(path: Path) -> None:
    """Raise ModelLoadError unless ``path`` is a readable GGUF file."""
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file: {NOT_GGUF_HINT}")


def parse_repository(model: str) -> tuple[str, str | None] | None:
    """``(repo, file_or_quant)`` when ``model`` is written like a Hugging Face repository, else None."""
    if model.startswith((".", "/", "~", "\\")):
        return None
    match = _REPOSITORY_RE.match(model)
    if match is None or match.group("repo").lower().endswith(".gguf"):  # models/x.gguf is a missing file
        return None
    return match.group("repo"), match.group("spec")


def resolve_model(model: str) -> Path:
    """The local GGUF file for ``model`` (a file, a directory holding one GGUF, or a repository to download)."""
    path = Path(model).expanduser()
    if path.is_file():
        check_gguf(path)
        return path
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
        chosen = choose_gguf_files([p.name for p in files], None, where=str(path))
        found = path / chosen[0]
        check_gguf(found)
        return found
    repository = parse_repository(model)
    if repository is not None:
        found = download_from_hub(*repository)
        check_gguf(found)
        return found
    raise ModelLoadError(
        f"model file not found: {model}; pass the path of a .gguf file or a Hugging Face repository "
        f"(e.g. --model {EXAMPLE_REPOSITORY})"
    )


def choose_gguf_files(files: Sequence[str], spec: str | None, *, where: str) -> list[str]:
    """Pick the GGUF file (all parts, for a split model) that ``spec`` (a file name or a quant) names.

    Without ``spec``: the only GGUF, else the first of ``PREFERRED_QUANTS`` present, else an error listing them.
    """
    ggufs = sorted(f for f in files if f.lower().endswith(".gguf"))
    if not ggufs:
        raise ModelLoadError(f"no .gguf file in {where}: {NOT_GGUF_HINT}")
    firsts = [f for f in ggufs if (m := _SPLIT_RE.search(f)) is None or int(m.group(1)) == 1]
    candidates: list[str]
    if spec is not None and spec.lower().endswith(".gguf"):
        candidates = [f for f in ggufs if f == spec or PurePosixPath(f).name == spec]
    elif spec is not None:
        wanted = _normalise(spec)
        candidates = [f for f in firsts if _quant_of(f) == wanted] or [
            f for f in firsts if wanted in _normalise(PurePosixPath(f).name)
        ]
    elif len(firsts) == 1:
        candidates = firsts
    else:
        candidates = []
        for quant in PREFERRED_QUANTS:
            candidates = [f for f in firsts if _quant_of(f) == _normalise(quant)]
            if candidates:
                break
    if len(candidates) != 1:
        names = ", ".join(PurePosixPath(f).name for f in firsts)
        what = f"{spec!r} matches {'no' if not candidates else 'more than one'} file" if spec else "which file?"
        raise ModelLoadError(f"{what} in {where}: choose one with --model {where}:FILE_OR_QUANT (files: {names})")
    chosen = candidates[0]
    match = _SPLIT_RE.search(chosen)
    if match is None:
        return [chosen]
    total = int(match.group(2))
    parts = [chosen[: match.start()] + f"-{i:05d}-of-{total:05d}.gguf" for i in range(1, total + 1)]
    missing = [p for p in parts if p not in ggufs]
    if missing:
        raise ModelLoadError(f"split model {chosen} is incomplete in {where}: missing {', '.join(missing)}")
    return parts


def _quant_of(file_name: str) -> str:
    """The normalised last dash-separated part of a GGUF file name (``...-v1.0-Q4_K_M.gguf`` → ``q4km``)."""
    stem = _SPLIT_RE.sub(".gguf", PurePosixPath(file_name).name)[: -len(".gguf")]
    return _normalise(re.split(r"[-.]", stem)[-1])


def download_from_hub(repo: str, spec: str | None) -> Path:
    """Download (or find in the local cache) the GGUF of ``repo`` that ``spec`` names; return its local path."""
    try:
        import huggingface_hub
        from huggingface_hub import constants as hub_constants
        from huggingface_hub import errors as hub_errors
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        raise ModelLoadError(
            f"downloading {repo} needs huggingface_hub: pip install huggingface_hub (or pass a local .gguf file)"
        ) from None
    _log_once(hub_logging.get_logger())
    offline_hint = "without network, download the .gguf file elsewhere and pass its path: --model ./FILE.gguf"
    where = f"{repo} on Hugging Face"
    network_error: str | None = None
    files: list[str] = []
    if hub_constants.HF_HUB_OFFLINE:
        network_error = "HF_HUB_OFFLINE is set"
    else:
        try:
            # model_info lists the files in one request and fails at once without network (no retries)
            info = huggingface_hub.HfApi().model_info(repo)
            files = [sibling.rfilename for sibling in info.siblings or ()]
        except (hub_errors.RepositoryNotFoundError, hub_errors.GatedRepoError) as exc:
            raise ModelLoadError(
                f"cannot open {where} ({type(exc).__name__}): check the name; for a private or gated repository "
                "log in with `hf auth login`"
            ) from None
        except Exception as exc:  # no network, DNS, proxy, server errors: try the local cache next
            network_error = _short_error(exc)
    if network_error is None:
        chosen = choose_gguf_files(files, spec, where=repo)
        logger.info("downloading %s from %s into the Hugging Face cache", ", ".join(chosen), repo)
        try:
            paths = [Path(huggingface_hub.hf_hub_download(repo, name)) for name in chosen]
        except Exception as exc:
            raise ModelLoadError(
                f"downloading {chosen[0]} from {repo} failed ({_short_error(exc)}); {offline_hint}"
            ) from None
        return paths[0]
    cached = _cached_snapshot(repo)
    if cached is None:
        raise ModelLoadError(
            f"cannot download {repo} from Hugging Face ({network_error}) and it is not in the local cache "
            "(nor a local file); " + offline_hint
        )
    local_files = [p.relative_to(cached).as_posix() for p in cached.rglob("*.gguf") if p.is_file()]
    chosen = choose_gguf_files(local_files, spec, where=repo)
    logger.info("using %s from the Hugging Face cache (%s)", chosen[0], network_error)
    return cached / chosen[0]


def _log_once(hub_logger: logging.Logger) -> None:
    """Let huggingface_hub's warnings (retries of a dropped download) be printed once, in the application's format.

    huggingface_hub gives its logger a stderr handler of its own and also passes its records on to the root logger:
    where the application has configured the root logger (``sakura run`` does), every record would be printed twice.
    """
    if logging.getLogger().handlers:
        for handler in hub_logger.handlers[:]:
            if type(handler) is logging.StreamHandler:
                hub_logger.removeHandler(handler)


def _cached_snapshot(repo: str) -> Path | None:
    """The local snapshot folder of ``repo`` in the Hugging Face cache, or None when nothing is cached."""
    import huggingface_hub

    try:
        folder = huggingface_hub.snapshot_download(repo, allow_patterns=["*.gguf"], local_files_only=True)
    except Exception:  # LocalEntryNotFoundError and friends: nothing cached
        return None
    return Path(str(folder))


def _short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:200] if first else type(exc).__name__
