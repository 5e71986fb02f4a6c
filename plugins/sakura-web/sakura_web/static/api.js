// Every request to the server: the Authorization header (asked for once, on the first 401), JSON errors, SSE
// streams read with fetch() (EventSource cannot send headers), and downloads saved through a blob URL.

import { t } from "./i18n.js";

const KEY_STORAGE = "sakura.auth";

/** An error the server answered (its OpenAI-style message) or a failed connection. */
export class ApiError extends Error {
  constructor(message, status = 0, code = null) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let authorization = sessionStorage.getItem(KEY_STORAGE) || localStorage.getItem(KEY_STORAGE) || null;
let pendingPrompt = null;

/** The Authorization header value this page sends, or null. */
export function currentAuthorization() {
  return authorization;
}

function promptForCredentials(basicOnly, refused) {
  if (!pendingPrompt) {
    pendingPrompt = showAuthDialog(basicOnly, refused).finally(() => {
      pendingPrompt = null;
    });
  }
  return pendingPrompt;
}

/** Ask for the key before the first API call when the server needs one and the page holds none (the public
 * /translate/auth says so), so a first visit makes no refused request. */
export async function ensureCredentials() {
  if (authorization) return;
  let needs;
  try {
    const response = await fetch("/translate/auth", { credentials: "omit" });
    if (!response.ok) return;
    needs = await response.json();
  } catch {
    return; // the calls that follow report the failure
  }
  if (needs.required) await promptForCredentials(!needs.schemes.includes("bearer"), false);
}

function showAuthDialog(basicOnly, refused) {
  const dialog = document.getElementById("auth-dialog");
  const form = document.getElementById("auth-form");
  const userRow = document.getElementById("auth-user-row");
  const user = document.getElementById("auth-user");
  const key = document.getElementById("auth-key");
  const remember = document.getElementById("auth-remember");
  const error = document.getElementById("auth-error");
  // a server with only --auth USER:PASS (no Bearer challenge) takes HTTP Basic: ask for the user too
  userRow.hidden = !basicOnly;
  error.hidden = !refused;
  key.value = "";
  return new Promise((resolve) => {
    const submit = (event) => {
      event.preventDefault();
      if (!key.value) {
        key.focus();
        return;
      }
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("cancel", keepOpen);
      const value = basicOnly ? `Basic ${base64Utf8(`${user.value}:${key.value}`)}` : `Bearer ${key.value}`;
      authorization = value;
      sessionStorage.setItem(KEY_STORAGE, value);
      if (remember.checked) localStorage.setItem(KEY_STORAGE, value);
      else localStorage.removeItem(KEY_STORAGE);
      dialog.close();
      resolve();
    };
    const keepOpen = (event) => event.preventDefault();
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", keepOpen);
    dialog.showModal();
    (basicOnly ? user : key).focus();
  });
}

function base64Utf8(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** fetch() with the page's credentials; a 401 asks for the key and tries again. */
export async function apiFetch(path, options = {}) {
  let refused = false;
  for (;;) {
    const headers = new Headers(options.headers || {});
    if (authorization) headers.set("Authorization", authorization);
    let response;
    try {
      // credentials "omit": the browser never shows its own Basic dialog; the page's dialog asks instead
      response = await fetch(path, { ...options, headers, credentials: "omit" });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(String(error.message || error));
    }
    if (response.status !== 401) return response;
    await response.body?.cancel();
    sessionStorage.removeItem(KEY_STORAGE);
    localStorage.removeItem(KEY_STORAGE);
    const challenges = (response.headers.get("WWW-Authenticate") || "").toLowerCase();
    const basicOnly = challenges.includes("basic") && !challenges.includes("bearer");
    await promptForCredentials(basicOnly, refused || authorization !== null);
    refused = true;
  }
}

/** The server's error message of a failed response. */
export async function errorOf(response) {
  try {
    const body = await response.json();
    const error = body.error || {};
    return new ApiError(error.message || `HTTP ${response.status}`, response.status, error.code || null);
  } catch {
    return new ApiError(`HTTP ${response.status}`, response.status);
  }
}

/** A JSON request: the parsed answer, or ApiError. */
export async function apiJson(path, options = {}) {
  const init = { ...options };
  if (init.json !== undefined) {
    init.body = JSON.stringify(init.json);
    init.headers = { ...(init.headers || {}), "Content-Type": "application/json" };
    delete init.json;
  }
  const response = await apiFetch(path, init);
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

/** The JSON payload of each `data:` event of a text/event-stream response, as they arrive. */
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data && data !== "[DONE]") yield JSON.parse(data);
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** The file name a Content-Disposition header gives (RFC 6266: filename* first), or ``fallback``. */
export function dispositionName(header, fallback) {
  if (!header) return fallback;
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      /* fall through to the plain name */
    }
  }
  const plain = /filename\s*=\s*("([^"]*)"|[^;]+)/.exec(header);
  if (plain) return (plain[2] ?? plain[1]).trim();
  return fallback;
}

/** Save a Blob as a file through a temporary blob: URL. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Fetch ``path`` with the credentials and save the answer under the name its Content-Disposition gives. */
export async function download(path, fallback) {
  const response = await apiFetch(path);
  if (!response.ok) throw await errorOf(response);
  const blob = await response.blob();
  saveBlob(blob, dispositionName(response.headers.get("Content-Disposition"), fallback));
}

/** Show a short message in the page's status line (read by screen readers). */
export function announce(message, kind = "info") {
  const status = document.getElementById("status");
  status.textContent = message;
  status.dataset.kind = kind;
}

/** Announce an error in the current language. */
export function announceError(error) {
  announce(t("error.generic", { error: error.message || String(error) }), "error");
}
