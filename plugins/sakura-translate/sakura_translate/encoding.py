"""Decoding the text files users have: UTF-8 (with or without BOM), Shift_JIS, EUC-JP, UTF-16 and UTF-32."""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sakura_translate.errors import InputError, zh

#: Encodings tried when none is given, as Python names them (cp932 is Windows' superset of Shift_JIS).
CANDIDATE_ENCODINGS = ("utf_8", "cp932", "euc_jp", "utf_16", "utf_32", "iso2022_jp")
_BOMS = (
    (codecs.BOM_UTF8, "utf_8_sig"),
    (codecs.BOM_UTF32_LE, "utf_32"),  # before UTF-16: its BOM starts with UTF-16 LE's
    (codecs.BOM_UTF32_BE, "utf_32"),
    (codecs.BOM_UTF16_LE, "utf_16"),
    (codecs.BOM_UTF16_BE, "utf_16"),
)
#: Windows' extension of an encoding, which files saved on Windows may use (①, ～ and the like).
_SUPERSETS = {"shift_jis": "cp932"}
#: Share of control characters (other than tab and line breaks) above which decoded bytes are not text.
_MAX_CONTROL_SHARE = 0.01


@dataclass(frozen=True)
class DecodedText:
    """A file's text and the encoding it was read with."""

    text: str
    encoding: str


def decode_text(data: bytes, path: Path, encoding: str | None = None) -> DecodedText:
    """Decode ``data`` read from ``path``: with ``encoding`` when given, else by BOM, UTF-8, then detection among
    the common Japanese encodings; no byte-order mark is left at the start. InputError (one line, naming ``path``)
    when it cannot be decoded."""
    decoded = _decode(data, path, encoding)
    return DecodedText(decoded.text.lstrip("\ufeff"), decoded.encoding)


def _decode(data: bytes, path: Path, encoding: str | None) -> DecodedText:
    if encoding is not None:
        return _decode_as(data, path, encoding)
    for bom, name in _BOMS:
        if data.startswith(bom):
            return _decode_as(data, path, name)
    try:
        decoded = DecodedText(data.decode("utf_8"), "utf-8")
    except UnicodeDecodeError:
        import charset_normalizer

        best = charset_normalizer.from_bytes(data, cp_isolation=list(CANDIDATE_ENCODINGS)).best()
        decoded = DecodedText(str(best), codecs.lookup(best.encoding).name) if best is not None else DecodedText("", "")
        if not decoded.encoding or not _looks_like_text(decoded.text):
            # too short for statistics, or UTF-16 without a byte-order mark: the decoding that reads as Japanese
            decoded = _most_japanese(data) or decoded
    if not decoded.encoding or not _looks_like_text(decoded.text):
        raise InputError(
            zh(
                f"{path}: cannot tell its text encoding (tried UTF-8, Shift_JIS, EUC-JP, UTF-16); "
                "pass it with --encoding, e.g. --encoding shift_jis",
                "无法识别文本编码，请用 --encoding 指定",
            )
        )
    return decoded


def _decode_as(data: bytes, path: Path, encoding: str) -> DecodedText:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            zh(f"unknown encoding {encoding!r}; try utf-8, shift_jis, euc_jp or utf-16", "未知的编码")
        ) from None
    if name == "utf-8" and data.startswith(codecs.BOM_UTF8):
        name = "utf-8-sig"
    name = _SUPERSETS.get(name, name)
    try:
        text = data.decode(name)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not valid {name} (byte {exc.start}); pass the file's encoding with --encoding"
        ) from None
    if not _looks_like_text(text):
        raise InputError(
            zh(
                f"{path}: does not look like text in {name}; pass the file's encoding with --encoding",
                "看起来不是该编码的文本，请用 --encoding 指定编码",
            )
        )
    return DecodedText(text, name)


def _looks_like_text(text: str) -> bool:
    controls = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    return controls <= len(text) * _MAX_CONTROL_SHARE


#: Decodings tried when detection finds nothing: short files, and UTF-16 saved without a byte-order mark.
_FALLBACK_ENCODINGS = ("cp932", "euc_jp", "utf_16_le", "utf_16_be")
#: Share of characters a Japanese text's decoding must have in the ranges Japanese text uses.
_MIN_JAPANESE_SHARE = 0.95


def _japanese_share(text: str) -> float:
    """Share of ``text`` in kana, CJK punctuation, kanji, full-width forms, printable ASCII and whitespace."""
    if not text:
        return 0.0
    plausible = sum(
        1
        for ch in text
        if ch.isspace()
        or " " <= ch <= "~"
        or "\u3000" <= ch <= "\u30ff"
        or "\u4e00" <= ch <= "\u9fff"
        or "\uff00" <= ch <= "\uffef"
    )
    return plausible / len(text)


def _most_japanese(data: bytes) -> DecodedText | None:
    """The strict decoding of ``data`` that reads most like Japanese (it must have kana), or None."""
    best: DecodedText | None = None
    best_share = _MIN_JAPANESE_SHARE
    for name in _FALLBACK_ENCODINGS:
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        has_kana = any("\u3041" <= ch <= "\u30ff" for ch in text)
        share = _japanese_share(text)
        if has_kana and share >= best_share and (best is None or share > best_share):
            best, best_share = DecodedText(text, codecs.lookup(name).name), share
    return best
