// The server view: slots, queue, speed and cache from /slots, /health and /metrics, refreshed only while the view
// and the browser tab are both visible (an idle page costs the server nothing).

import { apiFetch, apiJson } from "./api.js";
import { t } from "./i18n.js";
import { parseMetrics, total } from "./metrics.js";

//: /slots and /metrics every tick, /health every HEALTH_EVERY ticks: under one request a second.
const TICK_MS = 3000;
const HEALTH_EVERY = 5;

let timer = null;
let epoch = 0;
let ticks = 0;
let active = false;
let last = null;
let health = "–";

function set(id, value) {
  const element = document.getElementById(id);
  if (element.textContent !== value) element.textContent = value;
}

function format(value) {
  return value === null || value === undefined ? "–" : Math.round(value).toLocaleString();
}

async function refresh() {
  try {
    if (ticks % HEALTH_EVERY === 0) {
      const response = await apiFetch("/health");
      const body = await response.json().catch(() => ({}));
      health = body.status || String(response.status);
    }
    ticks += 1;
    const [slots, metricsText] = await Promise.all([
      apiJson("/slots").catch(() => []),
      apiFetch("/metrics").then((r) => (r.ok ? r.text() : "")),
    ]);
    const samples = parseMetrics(metricsText);
    const busy = slots.filter((slot) => slot.is_processing).length;
    set("m-health", health);
    set("m-slots", `${busy} / ${slots.length - busy}`);
    set("m-queue", format(total(samples, "sakura_queue_depth") ?? total(samples, "llamacpp:requests_deferred")));
    const completion = total(samples, "sakura_completion_tokens_total") ?? total(samples, "llamacpp:tokens_predicted_total");
    const now = performance.now();
    let speed = null;
    if (last && completion !== null && now > last.at) speed = ((completion - last.completion) * 1000) / (now - last.at);
    if (completion !== null) last = { at: now, completion };
    set("m-tps", speed === null ? "–" : t("server.tps.value", { n: speed.toFixed(1) }));
    set("m-cached", format(total(samples, "sakura_prompt_tokens_cached_total") ?? total(samples, "llamacpp:prompt_tokens_cached_total")));
    set("m-prompt", format(total(samples, "sakura_prompt_tokens_total") ?? total(samples, "llamacpp:prompt_tokens_total")));
    set("m-completion", format(completion));
    set("m-requests", format(total(samples, "sakura_requests_total")));
    renderSlots(slots);
    set("server-updated", t("server.updated", { time: new Date().toLocaleTimeString() }));
  } catch (error) {
    set("m-health", error.message || String(error));
  }
}

function renderSlots(slots) {
  const body = document.getElementById("slot-rows");
  body.replaceChildren(
    ...slots.map((slot) => {
      const row = document.createElement("tr");
      const cells = [
        slot.id,
        slot.is_processing ? t("server.slot.busy") : t("server.slot.idle"),
        slot.n_ctx,
        slot.tokens_cached ?? "–",
      ];
      for (const value of cells) {
        const cell = document.createElement("td");
        cell.textContent = String(value);
        row.append(cell);
      }
      row.className = slot.is_processing ? "busy" : "idle";
      return row;
    }),
  );
}

// one loop per activation: a refresh still in flight when the view is left (or shown again) schedules nothing
async function loop(run) {
  timer = null;
  if (run !== epoch || !active || document.visibilityState !== "visible") return;
  await refresh();
  if (run === epoch && active && document.visibilityState === "visible") timer = setTimeout(() => loop(run), TICK_MS);
}

/** Start or stop the live refresh as the view is shown or hidden. */
export function setServerViewActive(on) {
  active = on;
  epoch += 1;
  if (timer !== null) {
    clearTimeout(timer);
    timer = null;
  }
  if (on) {
    last = null;
    ticks = 0;
    loop(epoch);
  }
}

/** Pause while the browser tab is hidden; carry on when it is shown again. */
export function initServer() {
  document.addEventListener("visibilitychange", () => setServerViewActive(active));
}
