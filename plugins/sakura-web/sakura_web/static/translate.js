// The text view: Japanese in, Chinese streamed beside it line by line (source line i beside translation line i).

import { announce, announceError, apiFetch, errorOf, readEvents, saveBlob } from "./api.js";
import { glossaryFor } from "./glossary.js";
import { t } from "./i18n.js";

//: Characters sent in one request at most: a long text goes as several requests, each with the one before as context.
const CHUNK_CHARS = 600;
const FIELDS = ["temperature", "top_p", "frequency_penalty", "max_tokens"];

let info = null;
let running = null;
let targets = [];

/** The sampling settings the advanced fields hold (empty fields left to the preset). */
export function samplingSettings() {
  const sampling = {};
  for (const name of FIELDS) {
    const value = document.getElementById(name).value;
    if (value !== "") sampling[name] = Number(value);
  }
  return sampling;
}

/** The chosen preset's id, or null. */
export function presetId() {
  return document.getElementById("preset").value || null;
}

function fillPreset() {
  const preset = (info?.presets || []).find((p) => p.id === presetId());
  if (!preset) return;
  for (const name of FIELDS) {
    const value = preset.sampling?.[name];
    document.getElementById(name).value = value ?? "";
  }
}

function renderPresets() {
  const select = document.getElementById("preset");
  const chosen = select.value;
  select.replaceChildren();
  for (const preset of info?.presets || []) {
    const option = document.createElement("option");
    option.value = preset.id;
    option.textContent = document.documentElement.lang === "en" ? preset.label_en : preset.label_zh;
    select.append(option);
  }
  if (chosen) select.value = chosen;
}

/** Show the served model's details and presets (from GET /translate/info). */
export function setInfo(value) {
  const first = info === null;
  info = value;
  renderPresets();
  if (first) fillPreset();
}

/** Groups of non-blank source lines, each under CHUNK_CHARS characters: [{indexes: [line numbers], text}]. */
export function chunkSource(lines, limit) {
  const chunks = [];
  let current = null;
  lines.forEach((line, index) => {
    if (!line.trim()) {
      current = null;
      return;
    }
    if (current && current.size + line.length + 1 > limit) current = null;
    if (!current) {
      current = { indexes: [], lines: [], size: 0 };
      chunks.push(current);
    }
    current.indexes.push(index);
    current.lines.push(line);
    current.size += line.length + 1;
  });
  return chunks.map((c) => ({ indexes: c.indexes, text: c.lines.join("\n") }));
}

function renderRows(lines) {
  const body = document.getElementById("aligned-rows");
  body.replaceChildren();
  targets = lines.map((line) => {
    const row = document.createElement("tr");
    const source = document.createElement("td");
    source.className = "src";
    source.textContent = line;
    const target = document.createElement("td");
    target.className = "dst";
    row.append(source, target);
    body.append(row);
    return target;
  });
}

// the translation of one chunk, spread over its source lines; lines beyond them join the chunk's last line
function place(chunk, text) {
  const out = text.split("\n");
  chunk.indexes.forEach((lineIndex, position) => {
    const last = position === chunk.indexes.length - 1;
    const value = last ? out.slice(position).join("\n") : (out[position] ?? "");
    if (targets[lineIndex].textContent !== value) targets[lineIndex].textContent = value;
  });
}

/** The translation as text: one line per source line (blank lines kept). */
export function translationText() {
  return targets.map((cell) => cell.textContent).join("\n");
}

// one request, its answer streamed into the chunk's rows; the whole answer, with what it used, is returned
async function streamChunk(chunk, context, signal, usage) {
  const glossary = glossaryFor(chunk.text);
  const body = { text: chunk.text, glossary, context, preset: presetId(), sampling: samplingSettings(), stream: true };
  const response = await apiFetch("/translate", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await errorOf(response);
  let text = "";
  for await (const event of readEvents(response)) {
    if (event.error) throw new Error(event.error.message || "error");
    if (typeof event.delta === "string") {
      text += event.delta;
      place(chunk, text);
    }
    if (event.done) {
      text = event.text ?? text;
      place(chunk, text);
      usage.prompt += event.usage?.prompt_tokens || 0;
      usage.cached += event.usage?.cached_tokens || 0;
      usage.completion += event.usage?.completion_tokens || 0;
      usage.cut ||= event.finish_reason === "length";
    }
  }
  return { text, glossary: glossary.length };
}

async function translate() {
  const source = document.getElementById("source").value;
  if (!source.trim()) {
    announce(t("translate.empty"), "error");
    return;
  }
  const lines = source.split(/\r\n|\r|\n/);
  const limit = Math.min(CHUNK_CHARS, info?.limits?.max_text_chars || CHUNK_CHARS);
  const chunks = chunkSource(lines, limit);
  renderRows(lines);
  const controller = new AbortController();
  running = controller;
  setRunning(true);
  announce(t("translate.running"));
  const usage = { prompt: 0, cached: 0, completion: 0, cut: false };
  const hits = document.getElementById("glossary-hits");
  let used = 0;
  let context = null;
  try {
    for (const chunk of chunks) {
      let answer = await streamChunk(chunk, context, controller.signal, usage);
      used += answer.glossary;
      // an answer with another line count cannot be lined up: each line goes alone, as sakura translate splits
      if (chunk.indexes.length > 1 && answer.text.split("\n").length !== chunk.indexes.length) {
        const alone = chunk.indexes.map((index) => ({ indexes: [index], text: lines[index] }));
        for (const single of alone) {
          answer = await streamChunk(single, context, controller.signal, usage);
          context = answer.text;
        }
      }
      context = chunk.indexes.map((index) => targets[index].textContent).join("\n");
      hits.textContent = t("translate.glossary.hits", { n: used });
    }
    const message = t("translate.done", usage) + (usage.cut ? ` ${t("translate.length")}` : "");
    announce(message, "done");
  } catch (error) {
    if (error.name === "AbortError") announce(t("translate.stopped"));
    else announceError(error);
  } finally {
    running = null;
    setRunning(false);
  }
}

function setRunning(on) {
  document.getElementById("translate-go").disabled = on;
  document.getElementById("translate-stop").disabled = !on;
  document.getElementById("view-translate").setAttribute("aria-busy", on ? "true" : "false");
}

async function copy() {
  const text = translationText();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  announce(t("translate.copied"));
}

/** Wire the text view's controls. */
export function initTranslate() {
  document.getElementById("translate-go").addEventListener("click", translate);
  document.getElementById("translate-stop").addEventListener("click", () => running?.abort());
  document.getElementById("translate-copy").addEventListener("click", copy);
  document.getElementById("translate-download").addEventListener("click", () => {
    saveBlob(new Blob([`${translationText()}\n`], { type: "text/plain;charset=utf-8" }), "translation.zh.txt");
  });
  document.getElementById("preset").addEventListener("change", fillPreset);
  document.getElementById("source").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) translate();
  });
  document.addEventListener("sakura:lang", renderPresets);
}
