// The glossary view: an editable table kept in localStorage, imported from and exported to the CLI's formats.

import { announce, saveBlob } from "./api.js";
import { t } from "./i18n.js";
import { decodeBytes, entriesFor, mergeEntries, parseGlossary, serializeGlossary } from "./glossary-formats.js";

const STORAGE_KEY = "sakura.glossary";

let rows = load();

function load() {
  try {
    const data = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
    return Array.isArray(data) ? data.map((e) => ({ src: e.src || "", dst: e.dst || "", info: e.info || "" })) : [];
  } catch {
    return [];
  }
}

function save() {
  localStorage.setItem(STORAGE_KEY, JSON.stringify(rows));
  updateCount();
}

/** The usable entries (both source and target filled), a later row replacing an earlier one of the same source. */
export function glossaryEntries() {
  const entries = rows
    .map((row) => ({ src: row.src.trim(), dst: row.dst.trim(), info: row.info.trim() || null }))
    .filter((entry) => entry.src && entry.dst);
  return mergeEntries(entries);
}

/** What a request for ``text`` carries: the entries whose source occurs in it, as {src, dst, info?}. */
export function glossaryFor(text) {
  return entriesFor(glossaryEntries(), text).map((e) => (e.info ? e : { src: e.src, dst: e.dst }));
}

function updateCount() {
  document.getElementById("glossary-count").textContent = t("glossary.count", { n: glossaryEntries().length });
}

function cellInput(row, field, number) {
  const input = document.createElement("input");
  input.type = "text";
  input.value = row[field];
  input.dataset.field = field;
  input.setAttribute("aria-label", t(`glossary.row.${field === "info" ? "note" : field}`, { n: number }));
  input.addEventListener("input", () => {
    row[field] = input.value;
    save();
  });
  const cell = document.createElement("td");
  cell.append(input);
  return cell;
}

function render() {
  const body = document.getElementById("glossary-rows");
  body.replaceChildren();
  rows.forEach((row, index) => {
    const tr = document.createElement("tr");
    tr.append(cellInput(row, "src", index + 1), cellInput(row, "dst", index + 1), cellInput(row, "info", index + 1));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = t("glossary.delete");
    remove.setAttribute("aria-label", t("glossary.row.delete", { n: index + 1 }));
    remove.addEventListener("click", () => {
      rows.splice(index, 1);
      save();
      render();
      const next = body.querySelectorAll("input")[Math.min(index, rows.length - 1) * 3];
      (next || document.getElementById("glossary-add")).focus();
    });
    const actions = document.createElement("td");
    actions.append(remove);
    tr.append(actions);
    body.append(tr);
  });
  updateCount();
}

async function importFiles(files) {
  for (const file of files) {
    try {
      const text = decodeBytes(await file.arrayBuffer());
      const imported = parseGlossary(text, file.name);
      const merged = mergeEntries([...glossaryEntries(), ...imported]);
      rows = merged.map((e) => ({ src: e.src, dst: e.dst, info: e.info || "" }));
      save();
      render();
      announce(t("glossary.imported", { n: imported.length, file: file.name }));
    } catch (error) {
      announce(t("glossary.import.failed", { error: error.message }), "error");
    }
  }
}

/** Wire the glossary view's controls. */
export function initGlossary() {
  document.getElementById("glossary-add").addEventListener("click", () => {
    rows.push({ src: "", dst: "", info: "" });
    save();
    render();
    const inputs = document.querySelectorAll("#glossary-rows input");
    inputs[inputs.length - 3].focus();
  });
  const picker = document.getElementById("glossary-import");
  picker.addEventListener("change", async () => {
    await importFiles([...picker.files]);
    picker.value = "";
  });
  document.getElementById("glossary-export").addEventListener("click", () => {
    const format = document.getElementById("glossary-format").value;
    const { text, name, type } = serializeGlossary(glossaryEntries(), format);
    saveBlob(new Blob([text], { type: `${type};charset=utf-8` }), name);
  });
  document.getElementById("glossary-clear").addEventListener("click", () => {
    rows = [];
    save();
    render();
  });
  window.addEventListener("storage", (event) => {
    if (event.key === STORAGE_KEY) {
      rows = load();
      render();
    }
  });
  document.addEventListener("sakura:lang", render);
  render();
}
