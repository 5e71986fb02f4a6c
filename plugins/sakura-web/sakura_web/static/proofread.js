// The proofread view: a job's chunks side by side (source / translation) with the checks' flags; a line edited by
// hand is saved with PUT /jobs/{id}/chunks/{index}, a chunk can be translated again; the result downloads again.

import { announce, announceError, apiJson, download } from "./api.js";
import { knownJobs, onJobsChanged } from "./files.js";
import { t } from "./i18n.js";

let chunks = [];
let jobId = "";

function renderJobChoices() {
  const select = document.getElementById("proof-job");
  const current = select.value || jobId;
  const options = [new Option(t("proofread.pick"), "")];
  for (const job of knownJobs()) {
    options.push(new Option(`${job.name} · ${t(`state.${job.state}`)}`, job.id));
  }
  const same =
    select.options.length === options.length && options.every((o, i) => select.options[i].value === o.value && select.options[i].text === o.text);
  if (!same) {
    select.replaceChildren(...options);
    select.value = current;
  }
}

function chunkElement(chunk) {
  const section = document.createElement("section");
  section.className = "chunk";
  section.dataset.index = chunk.index;
  if (chunk.flags.length) section.classList.add("flagged");
  const heading = document.createElement("h3");
  heading.textContent = t("proofread.chunk", { n: chunk.index + 1 }) + (chunk.edited ? ` ${t("proofread.edited")}` : "");
  const table = document.createElement("table");
  table.className = "grid proof";
  const body = document.createElement("tbody");
  const inputs = chunk.source.map((source, line) => {
    const row = document.createElement("tr");
    const number = document.createElement("td");
    number.className = "num";
    number.textContent = String(line + 1);
    const src = document.createElement("td");
    src.className = "src";
    src.textContent = source;
    const dst = document.createElement("td");
    const input = document.createElement("input");
    input.type = "text";
    input.value = chunk.translation[line] ?? "";
    input.setAttribute("aria-label", `${t("proofread.chunk", { n: chunk.index + 1 })} ${t("proofread.line", { n: line + 1 })}`);
    dst.append(input);
    const flags = document.createElement("td");
    flags.className = "flags";
    for (const flag of chunk.flags.filter((f) => f.line === line)) {
      const mark = document.createElement("span");
      mark.className = "flag";
      mark.dataset.reason = flag.reason;
      const label = t(`flag.${flag.reason}`);
      mark.textContent = label === `flag.${flag.reason}` ? flag.reason : label;
      mark.title = flag.message;
      flags.append(mark);
      row.classList.add("flagged");
    }
    row.append(number, src, dst, flags);
    body.append(row);
    return input;
  });
  table.append(body);
  const save = document.createElement("button");
  save.type = "button";
  save.className = "primary";
  save.textContent = t("proofread.save");
  save.addEventListener("click", async () => {
    try {
      const saved = await apiJson(`/jobs/${jobId}/chunks/${chunk.index}`, {
        method: "PUT",
        json: { translation: inputs.map((input) => input.value) },
      });
      replaceChunk(saved, section);
      announce(t("proofread.saved", { n: chunk.index + 1 }));
    } catch (error) {
      announceError(error);
    }
  });
  const again = document.createElement("button");
  again.type = "button";
  again.textContent = t("proofread.retranslate");
  again.addEventListener("click", async () => {
    again.disabled = true;
    try {
      const fresh = await apiJson(`/jobs/${jobId}/chunks/${chunk.index}/retranslate`, { method: "POST" });
      replaceChunk(fresh, section);
      announce(t("proofread.retranslated", { n: chunk.index + 1 }));
    } catch (error) {
      again.disabled = false;
      announceError(error);
    }
  });
  const actions = document.createElement("div");
  actions.className = "actions";
  actions.append(save, again);
  section.append(heading, table, actions);
  return section;
}

function replaceChunk(chunk, section) {
  chunks = chunks.map((c) => (c.index === chunk.index ? chunk : c));
  const fresh = chunkElement(chunk);
  section.replaceWith(fresh);
  fresh.querySelector("button")?.focus();
  summarize();
}

function summarize() {
  document.getElementById("proof-download").disabled = !knownJobs().some((j) => j.id === jobId && j.state === "done");
  const flags = chunks.reduce((sum, c) => sum + c.flags.length, 0);
  document.getElementById("proof-summary").textContent = jobId ? t("proofread.summary", { chunks: chunks.length, flags }) : "";
}

function render() {
  const only = document.getElementById("proof-flagged").checked;
  const shown = chunks.filter((c) => !only || c.flags.length);
  const box = document.getElementById("chunks");
  box.replaceChildren(...shown.map(chunkElement));
  if (jobId && !shown.length) {
    const empty = document.createElement("p");
    empty.className = "hint";
    empty.textContent = t("proofread.empty");
    box.append(empty);
  }
  summarize();
}

/** Show the chunks of job ``id`` (GET /jobs/{id}/chunks). */
export async function openJob(id) {
  jobId = id;
  renderJobChoices();
  document.getElementById("proof-job").value = id;
  chunks = [];
  if (id) {
    try {
      chunks = (await apiJson(`/jobs/${id}/chunks`)).data;
    } catch (error) {
      announceError(error);
    }
  }
  render();
}

/** Wire the proofread view's controls. */
export function initProofread() {
  const select = document.getElementById("proof-job");
  select.addEventListener("change", () => openJob(select.value));
  document.getElementById("proof-reload").addEventListener("click", () => openJob(jobId));
  document.getElementById("proof-flagged").addEventListener("change", render);
  document.getElementById("proof-download").addEventListener("click", () => {
    const job = knownJobs().find((j) => j.id === jobId);
    if (job) download(`/jobs/${job.id}/result`, job.result_name || job.name).catch(announceError);
  });
  onJobsChanged(renderJobChoices);
  document.addEventListener("sakura:lang", () => {
    renderJobChoices();
    render();
  });
  renderJobChoices();
  summarize();
}
