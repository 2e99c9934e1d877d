// Shared helpers for the staff consoles (agent, reception, admin): page start-up with the language
// switch, list normalisation, dates, accessible dialogs and live announcements.
import {api, pickLanguage, setLanguage, translate, el} from "/static/clinicall/api.js";

export {api, el};

// Picks the language, translates [data-i18n] nodes, draws the language switch into #lang-switch,
// fills the header (clinic, user) from /api/me and returns {lang, t, me}.
export async function startPage(dict, {needMe = true} = {}) {
  const lang = pickLanguage(["vi", "en"], "vi");
  const t = translate(dict, lang);
  const box = document.getElementById("lang-switch");
  if (box) {
    box.replaceChildren();
    for (const [code, name] of [["vi", "Tiếng Việt"], ["en", "English"]]) {
      box.append(el("button", {type: "button", class: "secondary small", lang: code, "aria-pressed": String(code === lang),
        onclick: () => switchLanguage(code)}, name));
    }
  }
  let me = null;
  if (needMe) {
    me = await api("/api/me");
    const clinic = document.getElementById("clinic");
    if (clinic) clinic.textContent = me.clinic;
    const who = document.getElementById("who");
    if (who) who.textContent = me.display_name || me.username;
  }
  return {lang, t, me};
}

// Reload in the chosen language (a URL that differs only by its #hash would not reload by itself).
function switchLanguage(code) {
  setLanguage(code);
  const u = new URL(location.href);
  if (u.searchParams.has("lang")) { u.searchParams.delete("lang"); location.href = u.toString(); } else location.reload();
}

// API lists come as arrays or wrapped in an object ({patients: [...]}, {items: [...]}).
export function items(data, ...keys) {
  if (Array.isArray(data)) return data;
  if (!data || typeof data !== "object") return [];
  for (const key of [...keys, "items", "results", "data"]) if (Array.isArray(data[key])) return data[key];
  return [];
}

export function fmtDate(value, lang) {
  if (!value) return "";
  const d = value.length === 10 ? new Date(value + "T00:00:00") : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleDateString(lang === "en" ? "en-GB" : "vi-VN", {day: "2-digit", month: "2-digit", year: "numeric"});
}

export function fmtDateTime(value, lang) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(lang === "en" ? "en-GB" : "vi-VN", {dateStyle: "short", timeStyle: "short"});
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds === "") return "";
  const s = Math.round(Number(seconds));
  if (!Number.isFinite(s)) return "";
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

export function fmtMinutes(seconds, t) {
  if (seconds === null || seconds === undefined) return "—";
  const m = Math.max(0, Math.round(Number(seconds) / 60));
  return `${m} ${t("minutes")}`;
}

// Local calendar date (YYYY-MM-DD) in the browser's zone (the clinic's, on clinic PCs).
export function today(offsetDays = 0) {
  const d = new Date();
  d.setDate(d.getDate() + offsetDays);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

// Modal dialogs: native <dialog>.showModal() traps focus inside while open, Esc closes it;
// focus goes back to the element that opened it.
export function openDialog(dialog, focusTarget) {
  const opener = document.activeElement;
  if (dialog.open) dialog.close();
  dialog.showModal();
  dialog.addEventListener("close", () => { if (opener && opener.isConnected && opener.focus) opener.focus(); }, {once: true});
  const target = focusTarget || dialog.querySelector("[autofocus], input:not([type=hidden]), select, textarea, button");
  if (target) target.focus();
}

export function announce(region, text) {
  // Re-setting identical text is not announced; clear first so every state change is spoken.
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 30);
}

export function showError(target, err) {
  const text = (err && err.problem && err.problem.detail) || (err && err.message) || String(err);
  if (target) { target.textContent = text; target.hidden = false; }
  return text;
}

// Form values as an object: empty strings become null (omitted by the caller when needed).
export function formObject(form) {
  const out = {};
  for (const [k, v] of new FormData(form).entries()) out[k] = typeof v === "string" && v.trim() === "" ? null : v;
  return out;
}

export function withoutNulls(obj) {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== null && v !== undefined));
}

// "/" focuses the search field (unless typing somewhere already).
export function slashToFocus(input) {
  document.addEventListener("keydown", (e) => {
    if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (document.activeElement && document.activeElement.tagName) || "";
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || document.querySelector("dialog[open]")) return;
    e.preventDefault();
    input.focus();
    input.select();
  });
}
