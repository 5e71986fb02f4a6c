"""gettext ``.po`` catalogues (read and written with polib): each message's ``msgid`` is sent and its ``msgstr``
(or every plural form) written. The header, obsolete entries, comments, flags and references are kept."""

from __future__ import annotations

from pathlib import Path

import polib

from sakura_translate.errors import InputError, zh
from sakura_translate.formats.base import Convert, Document, LoadOptions, Translations, merged_text
from sakura_translate.formats.jsondoc import one_line, restore_lines


class PoCatalog(Document):
    """A gettext catalogue; plural entries send the singular and the plural as two segments."""

    kind = "gettext catalogue"

    def __init__(self, path: Path, catalog: polib.POFile) -> None:
        self.catalog = catalog
        #: Per segment: the entry and whether it is the plural form.
        self.slots: list[tuple[polib.POEntry, bool]] = []
        segments = []
        for entry in catalog:
            if entry.obsolete or not entry.msgid.strip():
                continue
            self.slots.append((entry, False))
            segments.append(one_line(entry.msgid))
            if entry.msgid_plural:
                self.slots.append((entry, True))
                segments.append(one_line(entry.msgid_plural))
        super().__init__(path, [segments], catalog.encoding)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> PoCatalog:
        try:
            catalog = polib.pofile(str(path), encoding=options.encoding or "utf-8", wrapwidth=78)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
                raise
            raise InputError(zh(f"{path}: not a gettext catalogue ({exc})", "不是有效的 gettext .po 文件")) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(zh(f"{path}: not a gettext catalogue ({exc})", "不是有效的 gettext .po 文件")) from None
        return cls(path, catalog)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        (translated,) = translations
        texts: dict[int, list[str]] = {}
        for (entry, plural), translation in zip(self.slots, translated, strict=True):
            source = entry.msgid_plural if plural else entry.msgid
            text = restore_lines(convert(merged_text(translation)), source)
            if bilingual and text:
                text = f"{source}\n{text}"
            texts.setdefault(id(entry), []).append(text)
        saved = {id(entry): (entry.msgstr, dict(entry.msgstr_plural)) for entry, _ in self.slots}
        try:
            for entry, _ in self.slots:
                forms = texts[id(entry)]
                if entry.msgid_plural:
                    count = max(len(entry.msgstr_plural), 1)
                    entry.msgstr_plural = {n: forms[min(n, len(forms) - 1)] for n in range(count)}
                else:
                    entry.msgstr = forms[0]
            return str(self.catalog).encode(self.catalog.encoding or "utf-8")
        finally:
            for entry, _ in self.slots:
                entry.msgstr, entry.msgstr_plural = saved[id(entry)]
