// The workbench's entry point: language, tabs (keyboard: arrows, Home, End), the model's details, each view.

import { announceError, apiJson, ensureCredentials } from "./api.js";
import { initFiles, loadJobs, setFormats } from "./files.js";
import { initGlossary } from "./glossary.js";
import { applyTexts, currentLang, loadLang, setLang, t } from "./i18n.js";
import { initProofread, openJob } from "./proofread.js";
import { initServer, setServerViewActive } from "./server.js";
import { initTranslate, setInfo } from "./translate.js";

const VIEWS = ["translate", "glossary", "files", "proofread", "server"];
let info = null;

function showView(name, focus = false) {
  const view = VIEWS.includes(name) ? name : "translate";
  for (const other of VIEWS) {
    const tab = document.getElementById(`tab-${other}`);
    const selected = other === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    document.getElementById(`view-${other}`).hidden = !selected;
  }
  if (focus) document.getElementById(`tab-${view}`).focus();
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  setServerViewActive(view === "server");
}

function initTabs() {
  const tabs = VIEWS.map((name) => document.getElementById(`tab-${name}`));
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => showView(VIEWS[index]));
    tab.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: VIEWS.length - 1 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      const next = (moves[event.key] + VIEWS.length) % VIEWS.length;
      showView(VIEWS[next], true);
    });
  });
  window.addEventListener("hashchange", () => showView(location.hash.slice(1)));
  document.addEventListener("sakura:proofread", (event) => {
    showView("proofread", true);
    openJob(event.detail);
  });
}

function renderModelLine() {
  if (!info) return;
  const unknown = t("model.unknown");
  document.getElementById("model-line").textContent = t("model.line", {
    name: info.model,
    version: info.version ?? unknown,
    format: info.prompt_format,
    parallelism: info.parallelism,
  });
  document.getElementById("model-line").removeAttribute("data-i18n");
}

async function loadInfo() {
  try {
    info = await apiJson("/translate/info");
    setInfo(info);
    setFormats(info.file_formats);
    renderModelLine();
  } catch (error) {
    announceError(error);
  }
}

async function start() {
  loadLang();
  applyTexts();
  document.getElementById("lang-switch").addEventListener("click", () => setLang(currentLang() === "en" ? "zh" : "en"));
  document.addEventListener("sakura:lang", renderModelLine);
  initTabs();
  initTranslate();
  initGlossary();
  initFiles();
  initProofread();
  initServer();
  showView(location.hash.slice(1));
  await ensureCredentials();
  await loadInfo();
  await loadJobs();
  document.body.dataset.ready = "true";
}

start();
