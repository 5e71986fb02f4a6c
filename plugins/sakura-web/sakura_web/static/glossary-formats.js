// The three glossary formats sakura translate reads (sakura_translate/glossary.py), read and written the same way:
// - Sakura's GPT dictionary: `src->dst #note` (or `src->dst`) per line;
// - GalTransl's dictionary: `src<TAB>dst<TAB>note` (note optional), lines starting with // or \\ are comments;
// - books.fishhawk.top's JSON {"src": "dst"}, and a JSON list of {src, dst, info} objects.
// A later entry for a source term replaces an earlier one and keeps the earlier one's place.

const COMMENT_PREFIXES = ["//", "\\\\"];
const NOTE_KEYS = ["info", "note", "notes", "comment"];
// the characters Python's str.strip() removes (JavaScript's trim() differs: it strips U+FEFF, keeps U+001C-U+001F)
const WS = "\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const LEADING = new RegExp(`^[${WS}]+`);
const TRAILING = new RegExp(`[${WS}]+$`);
// the line boundaries of Python's str.splitlines()
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

/** A glossary file that cannot be read; the message names the line as the CLI does. */
export class GlossaryError extends Error {}

/** Python's str.strip(). */
export function pyStrip(text) {
  return text.replace(LEADING, "").replace(TRAILING, "");
}

function splitLines(text) {
  const lines = text.split(LINE_BREAK);
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function quote(text) {
  return JSON.stringify(text);
}

/** Entries of `src->dst #note` and `src<TAB>dst<TAB>note` lines; blank and comment lines are skipped. */
export function parseLineGlossary(text, name = "glossary") {
  const entries = [];
  splitLines(text).forEach((raw, index) => {
    const number = index + 1;
    const line = raw.replace(/^[\r\n]+|[\r\n]+$/g, "");
    const start = line.replace(LEADING, "");
    if (!pyStrip(line) || COMMENT_PREFIXES.some((prefix) => start.startsWith(prefix))) return;
    let src;
    let dst;
    let note;
    if (line.includes("\t")) {
      const parts = line.split("\t").map(pyStrip);
      [src, dst] = parts;
      const rest = parts.slice(2).filter((part) => part);
      note = pyStrip(rest.join(" ").replace(/^#+/, "")) || null;
    } else if (line.includes("->")) {
      const at = line.indexOf("->");
      const right = line.slice(at + 2);
      const hash = right.indexOf("#");
      src = pyStrip(line.slice(0, at));
      dst = pyStrip(hash >= 0 ? right.slice(0, hash) : right);
      note = hash >= 0 ? pyStrip(right.slice(hash + 1)) || null : null;
    } else {
      throw new GlossaryError(
        `${name}:${number}: cannot read glossary line ${quote([...pyStrip(line)].slice(0, 40).join(""))}: ` +
          "expected 'src->dst #note' or 'src<TAB>dst<TAB>note'",
      );
    }
    if (!src || !dst) {
      throw new GlossaryError(
        `${name}:${number}: glossary line ${quote([...pyStrip(line)].slice(0, 40).join(""))} ` +
          "has an empty source or translation (术语表的这一行原文或译文为空)",
      );
    }
    entries.push({ src, dst, info: note });
  });
  return entries;
}

/** books.fishhawk.top's {"src": "dst"} object, or a list of {src, dst, info} objects. */
export function parseJsonGlossary(text, name = "glossary") {
  let data;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new GlossaryError(`${name}: not valid JSON (${error.message}) (不是有效的 JSON)`);
  }
  let items;
  if (data && typeof data === "object" && !Array.isArray(data)) {
    items = Object.entries(data).map(([src, dst]) => ({ src, dst }));
  } else if (Array.isArray(data)) {
    items = data;
  } else {
    throw new GlossaryError(
      `${name}: a JSON glossary is an object {"src": "dst"} or a list of {src, dst} objects (JSON 术语表应为对象或 {src, dst} 列表)`,
    );
  }
  return items.map((item, index) => {
    if (!item || typeof item !== "object" || Array.isArray(item)) {
      throw new GlossaryError(`${name}: glossary item ${index} is not an object with 'src' and 'dst' (术语表条目缺少 src 和 dst)`);
    }
    const { src, dst } = item;
    if (typeof src !== "string" || typeof dst !== "string" || !pyStrip(src) || !pyStrip(dst)) {
      throw new GlossaryError(
        `${name}: glossary item ${index} (${quote(src ?? null)}) needs a non-empty 'src' and 'dst' text (术语表条目的 src 和 dst 不能为空)`,
      );
    }
    const key = NOTE_KEYS.find((k) => typeof item[k] === "string" && pyStrip(item[k]));
    return { src: pyStrip(src), dst: pyStrip(dst), info: key ? pyStrip(item[key]) : null };
  });
}

/** A file's entries: JSON when its name ends in .json or its text starts with { or [, else lines. */
export function parseGlossary(text, name = "glossary") {
  const body = text.replace(/^\ufeff/, "");
  const start = body.replace(LEADING, "").slice(0, 1);
  if (name.toLowerCase().endsWith(".json") || start === "{" || start === "[") return parseJsonGlossary(body, name);
  return parseLineGlossary(body, name);
}

/** Entries by source term: a later one replaces an earlier one, in first-seen order. */
export function mergeEntries(entries) {
  const bySource = new Map();
  for (const entry of entries) bySource.set(entry.src, entry);
  return [...bySource.values()];
}

/** The entries whose source term occurs in ``text`` (what is sent with it). */
export function entriesFor(entries, text) {
  return entries.filter((entry) => entry.src && entry.dst && text.includes(entry.src));
}

/** The glossary in one of the formats: "sakura", "galtransl", "fishhawk" or "list"; with its file name. */
export function serializeGlossary(entries, format) {
  const usable = entries.filter((entry) => pyStrip(entry.src || "") && pyStrip(entry.dst || ""));
  if (format === "galtransl") {
    const lines = usable.map((e) => [e.src, e.dst, e.info].filter((part) => part).join("\t"));
    return { text: lines.map((line) => `${line}\n`).join(""), name: "glossary.galtransl.txt", type: "text/plain" };
  }
  if (format === "fishhawk") {
    const object = Object.fromEntries(usable.map((e) => [e.src, e.dst]));
    return { text: `${JSON.stringify(object, null, 2)}\n`, name: "glossary.json", type: "application/json" };
  }
  if (format === "list") {
    const list = usable.map((e) => (e.info ? { src: e.src, dst: e.dst, info: e.info } : { src: e.src, dst: e.dst }));
    return { text: `${JSON.stringify(list, null, 2)}\n`, name: "glossary.list.json", type: "application/json" };
  }
  const lines = usable.map((e) => (e.info ? `${e.src}->${e.dst} #${e.info}` : `${e.src}->${e.dst}`));
  return { text: lines.map((line) => `${line}\n`).join(""), name: "glossary.sakura.txt", type: "text/plain" };
}

/** A file's bytes as text: by byte-order mark, UTF-8, else the Japanese encoding with the fewest bad characters. */
export function decodeBytes(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return new TextDecoder("utf-8").decode(bytes);
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder("utf-16le").decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder("utf-16be").decode(bytes);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const candidates = ["shift_jis", "euc-jp", "iso-2022-jp"].map((label) => new TextDecoder(label).decode(bytes));
    const bad = (text) => (text.match(/\ufffd/g) || []).length;
    return candidates.reduce((best, text) => (bad(text) < bad(best) ? text : best));
  }
}
