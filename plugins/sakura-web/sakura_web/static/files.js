// The files view: files dropped or picked become jobs (POST /jobs); each job's card follows its SSE stream
// (GET /jobs/{id}/events, read with fetch so the key is sent) with a progress bar, speed and time left.

import { announce, announceError, apiFetch, apiJson, download, errorOf, readEvents } from "./api.js";
import { glossaryEntries } from "./glossary.js";
import { t } from "./i18n.js";
import { presetId, samplingSettings } from "./translate.js";

const FINAL = new Set(["done", "failed", "cancelled"]);
//: Seconds between tries to follow a job whose stream broke (the server restarting): well under 1 request a second.
const RETRY_MS = 3000;

const jobs = new Map();
const followed = new Set();
let formats = [];
let listeners = [];

/** Every job the page knows, newest first. */
export function knownJobs() {
  return [...jobs.values()].sort((a, b) => b.created_at - a.created_at);
}

/** Call ``listener`` whenever the job list or a job changes. */
export function onJobsChanged(listener) {
  listeners.push(listener);
}

function changed() {
  for (const listener of listeners) listener();
}

/** The formats the server reads (from GET /translate/info). */
export function setFormats(list) {
  formats = list || [];
  const extensions = formats.flatMap((f) => f.extensions);
  document.getElementById("file-input").accept = extensions.join(",");
  document.getElementById("file-formats").textContent = t("files.formats", { formats: extensions.join(" ") });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function button(text, className, action) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.textContent = text;
  element.addEventListener("click", action);
  return element;
}

function renderJob(job) {
  let card = document.getElementById(`job-${job.id}`);
  if (!card) {
    card = document.createElement("li");
    card.id = `job-${job.id}`;
    card.className = "job";
    card.dataset.jobId = job.id;
  }
  card.dataset.state = job.state;
  const title = document.createElement("h3");
  title.textContent = job.name;
  const state = document.createElement("span");
  state.className = `state state-${job.state}`;
  state.textContent = t(`state.${job.state}`);
  title.append(" ", state);
  const bar = document.createElement("progress");
  bar.max = Math.max(job.chunks_total, 1);
  bar.value = job.state === "done" ? bar.max : job.chunks_done;
  bar.setAttribute("aria-label", `${job.name} ${t("files.progress", { done: job.chunks_done, total: job.chunks_total })}`);
  const facts = document.createElement("p");
  facts.className = "facts";
  const parts = [t("files.progress", { done: job.chunks_done, total: job.chunks_total })];
  if (job.characters_per_second) parts.push(t("files.speed", { speed: job.characters_per_second.toFixed(1) }));
  if (!FINAL.has(job.state)) parts.push(t("files.left", { time: duration(job.seconds_left) }));
  if (job.flagged_lines) parts.push(t("files.flagged", { n: job.flagged_lines }));
  if (job.error) parts.push(job.error);
  facts.textContent = parts.join(" · ");
  const actions = document.createElement("div");
  actions.className = "actions";
  if (job.state === "done") {
    actions.append(
      button(t("files.download"), "primary", () => download(`/jobs/${job.id}/result`, job.result_name || job.name).catch(announceError)),
      button(t("files.proofread"), "", () => document.dispatchEvent(new CustomEvent("sakura:proofread", { detail: job.id }))),
    );
  }
  if (!FINAL.has(job.state)) {
    actions.append(button(t("files.cancel"), "", () => apiJson(`/jobs/${job.id}/cancel`, { method: "POST" }).then(update).catch(announceError)));
  } else {
    actions.append(button(t("files.remove"), "danger", () => remove(job)));
  }
  card.replaceChildren(title, bar, facts, actions);
  return card;
}

function renderList() {
  const list = document.getElementById("jobs");
  const cards = knownJobs().map(renderJob);
  // keep focus where it was when a card is redrawn
  const focused = document.activeElement;
  const focusedJob = focused?.closest?.(".job")?.dataset.jobId;
  const focusedText = focused?.textContent;
  list.replaceChildren(...cards);
  if (focusedJob) {
    const again = [...list.querySelectorAll(`#job-${CSS.escape(focusedJob)} button`)].find((b) => b.textContent === focusedText);
    again?.focus();
  }
  document.getElementById("jobs-empty").hidden = cards.length > 0;
}

function update(job) {
  jobs.set(job.id, job);
  renderList();
  changed();
  if (!FINAL.has(job.state)) follow(job.id);
}

async function remove(job) {
  try {
    await apiJson(`/jobs/${job.id}`, { method: "DELETE" });
    jobs.delete(job.id);
    renderList();
    changed();
  } catch (error) {
    announceError(error);
  }
}

// follow one job's events until it ends; a broken stream (a restarting server) is tried again every RETRY_MS
async function follow(id) {
  if (followed.has(id)) return;
  followed.add(id);
  try {
    for (;;) {
      try {
        const response = await apiFetch(`/jobs/${id}/events`, { headers: { Accept: "text/event-stream" } });
        if (response.status === 404) {
          jobs.delete(id);
          renderList();
          changed();
          return;
        }
        if (!response.ok) throw await errorOf(response);
        for await (const job of readEvents(response)) {
          jobs.set(job.id, job);
          renderList();
          changed();
          if (FINAL.has(job.state)) return;
        }
      } catch {
        /* the stream broke: try again below */
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  } finally {
    followed.delete(id);
  }
}

/** Load the job list (GET /jobs) and follow the unfinished ones. */
export async function loadJobs() {
  try {
    const list = await apiJson("/jobs");
    jobs.clear();
    for (const job of list.data) jobs.set(job.id, job);
    renderList();
    changed();
    for (const job of list.data) if (!FINAL.has(job.state)) follow(job.id);
  } catch (error) {
    announceError(error);
  }
}

/** Queue each file as a job with the text view's preset and sampling and the glossary. */
export async function uploadFiles(files) {
  for (const file of files) {
    const form = new FormData();
    form.append("file", file, file.name);
    const options = {
      glossary: glossaryEntries(),
      preset: presetId(),
      sampling: samplingSettings(),
      context: document.getElementById("job-context").value,
    };
    const chunkChars = document.getElementById("chunk_chars").value;
    if (chunkChars) options.chunk_chars = Number(chunkChars);
    form.append("options", JSON.stringify(options));
    try {
      const response = await apiFetch("/jobs", { method: "POST", body: form });
      if (!response.ok) throw await errorOf(response);
      update(await response.json());
      announce(t("files.uploaded", { name: file.name }));
    } catch (error) {
      announce(t("files.upload.failed", { name: file.name, error: error.message }), "error");
    }
  }
}

/** Wire the drop zone, the file picker and the refresh button. */
export function initFiles() {
  const zone = document.getElementById("drop-zone");
  const input = document.getElementById("file-input");
  input.addEventListener("change", async () => {
    const files = [...input.files];
    input.value = "";
    await uploadFiles(files);
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    uploadFiles([...(event.dataTransfer?.files || [])]);
  });
  document.getElementById("jobs-refresh").addEventListener("click", loadJobs);
  document.addEventListener("sakura:lang", () => {
    setFormats(formats);
    renderList();
  });
}
