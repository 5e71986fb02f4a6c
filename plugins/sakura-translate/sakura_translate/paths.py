"""Which files a run reads and writes: one file or every supported file of a folder, and their outputs."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from sakura_translate.cache import CACHE_SUFFIX
from sakura_translate.errors import InputError, zh
from sakura_translate.formats import SUPPORTED_SUFFIXES

#: Inserted before the suffix of a translated file written beside its source: book.txt → book.zh.txt.
TRANSLATED_MARK = ".zh"
TRADITIONAL_MARK = ".zh-Hant"


@dataclass(frozen=True)
class FilePlan:
    """One input file and where its translation goes."""

    source: Path
    output: Path

    @property
    def traditional(self) -> Path:
        """Where the Traditional Chinese copy goes: book.zh.txt → book.zh-Hant.txt, out.txt → out.zh-Hant.txt."""
        stem = self.output.stem.removesuffix(TRANSLATED_MARK)
        return self.output.with_name(stem + TRADITIONAL_MARK + self.output.suffix)


def plan_files(
    source: Path,
    output: Path | None,
    skip: tuple[Path, ...] = (),
    *,
    output_is_folder: bool = False,
    exclude: tuple[str, ...] = (),
) -> list[FilePlan]:
    """The files to translate. A file goes to ``output`` (a file, or a folder to put it in, created when
    ``output_is_folder``) or beside itself as ``NAME.zh.SUFFIX``; a folder's supported files (recursively, hidden
    ones and ``skip`` left out) go to ``output`` or a sibling folder ``NAME-zh``, keeping their relative paths."""
    if not source.exists():
        raise InputError(zh(f"{source}: no such file or folder", "没有这个文件或文件夹"))
    if source.is_dir():
        return _plan_folder(source, output, {p.resolve() for p in skip}, exclude)
    if source.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(
            zh(
                f"{source}: unsupported file type; sakura translate reads {', '.join(SUPPORTED_SUFFIXES)}",
                "不支持的文件类型",
            )
        )
    if output is None:
        target = source.with_name(source.stem + TRANSLATED_MARK + source.suffix)
    elif output.is_dir() or output_is_folder:
        target = output / source.name
    else:
        target = output
    if target.resolve() == source.resolve():
        raise InputError(
            zh(f"{target}: the output would overwrite the input; choose another --output", "输出会覆盖原文")
        )
    return [FilePlan(source, target)]


def _plan_folder(source: Path, output: Path | None, skip: set[Path], exclude: tuple[str, ...]) -> list[FilePlan]:
    target = output if output is not None else source.with_name(source.resolve().name + "-zh")
    if target.resolve() == source.resolve():
        raise InputError(
            zh(
                f"{target}: the output folder is the input folder; choose another --output",
                "输出文件夹与输入文件夹相同，请换一个 --output",
            )
        )
    if target.exists() and not target.is_dir():
        raise InputError(zh(f"{target}: the output of a folder must be a folder", "翻译文件夹时，输出也必须是文件夹"))
    resolved_target = target.resolve()
    plans = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in SUPPORTED_SUFFIXES or path.name.endswith(CACHE_SUFFIX):
            continue
        if any(fnmatch(relative.as_posix(), pattern) or fnmatch(path.name, pattern) for pattern in exclude):
            continue
        if _earlier_output(path):
            continue
        resolved = path.resolve()
        if resolved in skip or resolved.is_relative_to(resolved_target):
            continue
        plans.append(FilePlan(path, target / relative))
    if not plans:
        raise InputError(
            zh(
                f"{source}: no files to translate (sakura translate reads {', '.join(SUPPORTED_SUFFIXES)})",
                "没有可翻译的文件",
            )
        )
    return plans


def _earlier_output(path: Path) -> bool:
    """Whether ``path`` is the translation an earlier run wrote beside its source (book.zh.txt beside book.txt)."""
    for mark in (TRANSLATED_MARK, TRADITIONAL_MARK):
        if path.stem.endswith(mark) and path.with_name(path.stem.removesuffix(mark) + path.suffix).exists():
            return True
    return False
