"""EPUB books: the text of every XHTML document translated in place; markup, images, styles, fonts and the table of
contents kept byte for byte.

ebooklib reads the book (container, package document, spine, navigation); the translated book is the original
archive with only the changed documents replaced, because rewriting it through ebooklib would rebuild each
document's ``<head>`` and drop its stylesheet links.

Text is taken in runs: the inline content between two block boundaries (``<p>``, ``<div>``, headings, list items,
``<br/>``...), with ruby annotations (``<rt>``, ``<rp>``) left out, whitespace collapsed. One run is one segment.
The translation replaces the run's text where its first text stood (inside the same inline element, so its style
stays); ruby annotations of a translated run are removed. ``--bilingual`` keeps the run and adds ``<br/>`` and the
translation after it. With ``titles``, the book's title, the table of contents (NCX and navigation document) and
each document's ``<title>`` are translated too, as a group of their own.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sakura_translate.errors import InputError, zh
from sakura_translate.formats.base import INDENT_CHARS, Convert, Document, LoadOptions, Translations, merged_text

BLOCK_TAGS = frozenset(
    "address article aside blockquote body caption center dd details dialog dir div dl dt fieldset figcaption "
    "figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main menu nav ol p pre section summary table tbody "
    "td tfoot th thead tr ul".split()
)
SKIPPED_TAGS = frozenset("script style svg math head template noscript object".split())
ANNOTATION_TAGS = frozenset(("rt", "rp"))
DC_NS = "http://purl.org/dc/elements/1.1/"
OPF_NS = "http://www.idpf.org/2007/opf"
NCX_NS = "http://www.daisy.org/z3986/2005/ncx/"
LANG_ATTRIBUTES = ("lang", "{http://www.w3.org/XML/1998/namespace}lang")
_SPACES = re.compile(r"[ \t\r\n\f]+")
#: Characters XML 1.0 cannot hold (control characters a model may emit).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_BLANK = " \t\r\n\f" + INDENT_CHARS

Slot = tuple[Any, str]  # (lxml element, "text" or "tail")


@dataclass
class TextRun:
    """The inline text between two block boundaries, and where it ends (for ``--bilingual``)."""

    slots: list[Slot] = field(default_factory=list)
    annotations: list[Any] = field(default_factory=list)
    end: tuple[str, Any] | None = None  # ("before", element) or ("append", container)

    @property
    def text(self) -> str:
        joined = "".join(getattr(element, attr) or "" for element, attr in self.slots)
        return _SPACES.sub(" ", joined).strip(_BLANK)

    def replace(self, translation: str) -> None:
        """Put ``translation`` where the run's text begins; clear the rest of its text and its ruby annotations."""
        for annotation in self.annotations:  # emptied, not removed: their tails are slots of this run
            annotation.text = None
            annotation[:] = []
        filled = [slot for slot in self.slots if (getattr(slot[0], slot[1]) or "").strip(_BLANK)]
        # the translation goes where the text begins, but not into a ruby base when there is text outside one
        target = next((slot for slot in filled if not _in_ruby(*slot)), filled[0] if filled else None)
        for element, attr in filled:
            value = getattr(element, attr)
            if (element, attr) == target:
                lead = value[: len(value) - len(value.lstrip(_BLANK))]
                setattr(element, attr, lead + xml_text(translation))
            else:
                setattr(element, attr, "")

    def append_after(self, translation: str) -> None:
        """Keep the run; add a line break and ``translation`` after it."""
        assert self.end is not None
        where, anchor = self.end
        container = anchor.getparent() if where == "before" else anchor
        namespace = _namespace(container)
        br = _make_element("br", namespace)
        br.tail = xml_text(translation)
        if where == "before":
            anchor.addprevious(br)
        else:
            container.append(br)


class _RunCollector:
    """Walks an element's content in document order, cutting it into text runs."""

    def __init__(self) -> None:
        self.runs: list[TextRun] = []
        self.current = TextRun()

    def _add(self, element: Any, attr: str) -> None:
        if getattr(element, attr):
            self.current.slots.append((element, attr))

    def _end(self, where: str, anchor: Any) -> None:
        run, self.current = self.current, TextRun()
        if run.text:
            run.end = (where, anchor)
            self.runs.append(run)

    def block(self, element: Any) -> None:
        self._end("before", element)
        self._children(element)
        self._end("append", element)

    def _children(self, parent: Any) -> None:
        self._add(parent, "text")
        for child in parent:
            if not isinstance(child.tag, str):  # comments and processing instructions: only their tail is text
                self._add(child, "tail")
                continue
            name = _local_name(child)
            if name in ANNOTATION_TAGS:
                self.current.annotations.append(child)
            elif name == "br":
                self._end("before", child)
            elif name in BLOCK_TAGS:
                self.block(child)
            elif name not in SKIPPED_TAGS:
                self._children(child)
            self._add(child, "tail")


def text_runs(body: Any) -> list[TextRun]:
    """The text runs of ``body`` (or any block element), in document order."""
    collector = _RunCollector()
    collector.block(body)
    return collector.runs


class XhtmlPage:
    """One XHTML document of the book, parsed afresh for every rendering."""

    def __init__(self, zip_path: str, data: bytes, book: Path) -> None:
        self.zip_path = zip_path
        self.data = data
        self.book = book
        root = self.parse()
        self.body_texts = [run.text for run in self._body_runs(root)]
        title = self._title(root)
        self.title_text = _SPACES.sub(" ", title.text or "").strip(_BLANK) if title is not None else ""

    def parse(self) -> Any:
        return _parse_xml(self.data, f"{self.book}: {self.zip_path}")

    @staticmethod
    def _body_runs(root: Any) -> list[TextRun]:
        body = next((el for el in root.iter() if isinstance(el.tag, str) and _local_name(el) == "body"), None)
        return text_runs(body) if body is not None else []

    @staticmethod
    def _title(root: Any) -> Any:
        head = next((el for el in root if isinstance(el.tag, str) and _local_name(el) == "head"), None)
        if head is None:
            return None
        return next((el for el in head if isinstance(el.tag, str) and _local_name(el) == "title"), None)

    def render(self, body: Iterator[str | None], title: str | None, *, bilingual: bool, lang: str) -> bytes:
        root = self.parse()
        if not bilingual:  # a bilingual page holds both languages: its declared one stays
            for element in root.iter():
                for attribute in LANG_ATTRIBUTES:
                    if isinstance(element.tag, str) and _is_japanese(element.get(attribute)):
                        element.set(attribute, lang)
        for run in self._body_runs(root):
            text = merged_text(next(body)).lstrip(INDENT_CHARS)
            if bilingual:
                if text:
                    run.append_after(text)
            else:
                run.replace(text)
        if title is not None:
            element = self._title(root)
            if element is not None:
                element.text = xml_text(title)
        return _serialize(root)


class EpubDocument(Document):
    """An ``.epub`` book."""

    kind = "epub"

    def __init__(
        self,
        path: Path,
        archive: bytes,
        pages: list[XhtmlPage],
        titles: TitleFiles | None,
        opf: tuple[str, bytes],
    ) -> None:
        self.archive = archive
        self.opf = opf
        self.pages = pages
        self.titles = titles
        body = [text for page in pages for text in page.body_texts]
        groups = [body]
        if titles is not None:
            groups.append(titles.texts(pages))
        super().__init__(path, groups)

    @classmethod
    def load(cls, path: Path, options: LoadOptions) -> EpubDocument:
        from ebooklib import epub

        try:
            archive = path.read_bytes()
            reader = epub.EpubReader(io.BytesIO(archive), {"ignore_ncx": True})
            book = reader.load()
            reader.process()
        except Exception as exc:  # ebooklib raises many kinds (zip, XML, KeyError) for a broken book
            raise InputError(
                zh(f"{path}: not a readable epub ({type(exc).__name__}: {exc})", "epub 文件已损坏或无法读取")
            ) from None
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            names = set(zf.namelist())

            def zip_name(item: Any) -> str:
                return posixpath.normpath(posixpath.join(reader.opf_dir, item.get_name()))

            opf = (reader.opf_file, zf.read(reader.opf_file))
            # the pages from the package document itself: ebooklib renames some items (a cover page marked
            # properties="cover" becomes "cover.xhtml" wherever it is)
            pages = [
                XhtmlPage(name, zf.read(name), path) for name in _spine_documents(opf, reader.opf_dir, names, path)
            ]
            titles = None
            if options.titles:
                tables = [item for item in book.get_items() if isinstance(item, epub.EpubNcx | epub.EpubNav)]
                files = [zip_name(item) for item in tables if zip_name(item) in names]
                titles = TitleFiles(opf=opf, tables=[(name, zf.read(name)) for name in files], book=path)
        return cls(path, archive, pages, titles, opf)

    def render(self, translations: Translations, *, bilingual: bool = False, convert: Convert = str) -> bytes:
        body = iter(_converted(translations[0], convert))
        replaced: dict[str, bytes] = {}
        page_titles: dict[str, str | None] = {page.zip_path: None for page in self.pages}
        if self.titles is not None:
            titles = iter(_converted(translations[1], convert))
            replaced.update(self.titles.render(titles, self.pages, page_titles))
        # the translated book says it is Chinese (Traditional where ``convert`` turns 汉 into 漢)
        language = "zh-CN" if convert("汉") == "汉" else "zh-TW"
        for page in self.pages:
            replaced[page.zip_path] = page.render(body, page_titles[page.zip_path], bilingual=bilingual, lang=language)
        opf_name, opf_data = self.opf
        opf = _parse_xml(replaced.get(opf_name, opf_data), f"{self.path}: {opf_name}")
        for element in opf.iter(f"{{{DC_NS}}}language"):
            if _is_japanese(element.text):
                element.text = language
        replaced[opf_name] = _serialize(opf)
        return _rewrite_archive(self.archive, replaced)


class TitleFiles:
    """The book's title (package document), its tables of contents (NCX, navigation document) and page titles."""

    def __init__(self, opf: tuple[str, bytes], tables: list[tuple[str, bytes]], book: Path) -> None:
        self.opf = opf
        self.tables = tables
        self.book = book

    def _opf_titles(self, root: Any) -> list[Any]:
        return [el for el in root.iter(f"{{{DC_NS}}}title") if (el.text or "").strip()]

    def _table_entries(self, name: str, root: Any) -> list[Any]:
        """NCX label texts, or the text runs of an XHTML navigation document."""
        if _namespace(root) == NCX_NS:
            return [el for el in root.iter(f"{{{NCX_NS}}}text") if (el.text or "").strip(_BLANK)]
        return XhtmlPage._body_runs(root)

    def texts(self, pages: list[XhtmlPage]) -> list[str]:
        texts = [_SPACES.sub(" ", el.text).strip(_BLANK) for el in self._opf_titles(self._parse(*self.opf))]
        for name, data in self.tables:
            for entry in self._table_entries(name, self._parse(name, data)):
                texts.append(entry.text if isinstance(entry, TextRun) else _SPACES.sub(" ", entry.text).strip(_BLANK))
        texts.extend(page.title_text for page in pages if page.title_text)
        return texts

    def render(
        self, titles: Iterator[str | None], pages: list[XhtmlPage], page_titles: dict[str, str | None]
    ) -> dict[str, bytes]:
        replaced = {}
        opf_name, opf_data = self.opf
        root = self._parse(opf_name, opf_data)
        for element in self._opf_titles(root):
            element.text = xml_text(merged_text(next(titles)))
        replaced[opf_name] = _serialize(root)
        for name, data in self.tables:
            root = self._parse(name, data)
            for entry in self._table_entries(name, root):
                translation = merged_text(next(titles))
                if isinstance(entry, TextRun):
                    entry.replace(translation)
                else:
                    entry.text = xml_text(translation)
            replaced[name] = _serialize(root)
        for page in pages:
            if page.title_text:
                page_titles[page.zip_path] = merged_text(next(titles))
        return replaced

    def _parse(self, name: str, data: bytes) -> Any:
        return _parse_xml(data, f"{self.book}: {name}")


def _is_japanese(language: str | None) -> bool:
    return language is not None and language.strip().lower().split("-")[0] in ("ja", "jp", "jpn")


def _spine_documents(opf: tuple[str, bytes], opf_dir: str, names: set[str], book: Path) -> list[str]:
    """The archive paths of the book's XHTML documents but the navigation document: in spine order, then the
    rest in manifest order; a manifest entry whose file is missing is left out, as readers do."""
    from urllib.parse import unquote

    root = _parse_xml(opf[1], f"{book}: {opf[0]}")
    documents: dict[str, str] = {}
    for item in root.iter(f"{{{OPF_NS}}}item"):
        properties = (item.get("properties") or "").split()
        if item.get("media-type") == "application/xhtml+xml" and "nav" not in properties and item.get("href"):
            name = posixpath.normpath(posixpath.join(opf_dir, unquote(item.get("href"))))
            if name in names:
                documents[item.get("id") or name] = name
    ordered = [
        documents.pop(ref.get("idref")) for ref in root.iter(f"{{{OPF_NS}}}itemref") if ref.get("idref") in documents
    ]
    return ordered + list(documents.values())


def xml_text(text: str) -> str:
    """``text`` without the characters XML cannot hold."""
    return _NOT_XML.sub("", text)


def _converted(translations: list[str | None], convert: Convert) -> list[str | None]:
    return [convert(t) if t is not None else None for t in translations]


def _rewrite_archive(archive: bytes, replaced: dict[str, bytes]) -> bytes:
    """The original archive with ``replaced`` entries' contents swapped; ``mimetype`` first and stored."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as zin, zipfile.ZipFile(out, "w") as zout:
        infos = sorted(zin.infolist(), key=lambda info: info.filename != "mimetype")
        for info in infos:
            data = replaced.get(info.filename)
            if data is None:
                data = zin.read(info.filename)
            if info.filename == "mimetype":
                zout.writestr(info, data, compress_type=zipfile.ZIP_STORED)
            else:
                zout.writestr(info, data, compress_type=info.compress_type)
    return out.getvalue()


def _parse_xml(data: bytes, where: str) -> Any:
    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        pass
    # XHTML with HTML-only entities (&nbsp;) or small slips: let libxml2 recover, as readers do
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, recover=True)
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise InputError(zh(f"{where} is not well-formed XML ({exc})", "不是格式正确的 XML")) from None
    if root is None:
        raise InputError(zh(f"{where} is not well-formed XML", "不是格式正确的 XML"))
    return root


def _serialize(root: Any) -> bytes:
    from lxml import etree

    return bytes(etree.tostring(root.getroottree(), encoding="utf-8", xml_declaration=True))


def _local_name(element: Any) -> str:
    tag = element.tag
    return str(tag).rpartition("}")[2].lower()


def _namespace(element: Any) -> str | None:
    tag = str(element.tag)
    return tag[1:].partition("}")[0] if tag.startswith("{") else None


def _make_element(name: str, namespace: str | None) -> Any:
    from lxml import etree

    return etree.Element(f"{{{namespace}}}{name}" if namespace else name)


def _in_ruby(element: Any, attr: str) -> bool:
    """Whether the text at this slot is inside a ``<ruby>`` element."""
    node = element if attr == "text" else element.getparent()
    while node is not None:
        if isinstance(node.tag, str) and _local_name(node) == "ruby":
            return True
        node = node.getparent()
    return False
