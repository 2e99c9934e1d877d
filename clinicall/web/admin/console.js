// Shared helpers for the staff consoles (agent, care lists, reception, admin): page start-up with the
// language switch and the dictionaries (/static/admin/i18n/common.json + the page's own), errors in the
// user's language next to the field they concern, one date/time and phone format per language
// (independent of the browser's locale), date fields, dialogs, live announcements and export links.
import {api, pickLanguage, setLanguage, translate, el} from "/static/clinicall/api.js";

export {api, el};

export const LANGUAGES = ["vi", "en", "zh"];
// dd/mm/yyyy for Vietnamese and English (the clinic's British English), yyyy-mm-dd for Chinese.
const DATE_ORDER = {vi: "dmy", en: "dmy", zh: "ymd"};
const ctx = {lang: "vi", t: (k) => k, zone: "Asia/Ho_Chi_Minh", region: "VN"};

async function loadDict(url) {
  const response = await fetch(url, {credentials: "same-origin"});
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

// Picks the language, loads the dictionaries, translates [data-i18n] nodes, draws the language switch into
// #lang-switch, fills the header (clinic, user) from /api/me and returns {lang, t, me}. `dict` is the page's
// dictionary: the URL of its JSON file, or the dictionary itself.
export async function startPage(dict, {needMe = true} = {}) {
  const lang = pickLanguage(LANGUAGES, "vi");
  const [common, own] = await Promise.all([loadDict("/static/admin/i18n/common.json"),
    typeof dict === "string" ? loadDict(dict) : (dict || {})]);
  const merged = Object.fromEntries(LANGUAGES.map((l) => [l, {...common[l], ...(own[l] || {})}]));
  const t = translate(merged, lang);
  Object.assign(ctx, {lang, t});
  const box = document.getElementById("lang-switch");
  if (box) {
    box.replaceChildren();
    box.setAttribute("aria-label", t("langGroup"));
    for (const code of LANGUAGES) {
      box.append(el("button", {type: "button", class: "secondary small", lang: code, "aria-pressed": String(code === lang),
        onclick: () => switchLanguage(code)}, merged[code]["lang." + code]));
    }
  }
  let me = null;
  if (needMe) {
    me = await api("/api/me");
    if (me.timezone) ctx.zone = me.timezone;
    const clinic = document.getElementById("clinic");
    if (clinic) clinic.textContent = me.clinic;
    const who = document.getElementById("who");
    if (who) who.textContent = me.display_name || me.username;
  }
  upgradeDates(document);
  new MutationObserver(() => upgradeDates(document)).observe(document.body, {childList: true, subtree: true});
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

// ---------- dates and times: one format per language, in the clinic's time zone ----------
const pad = (n) => String(n).padStart(2, "0");

function dayText(y, m, d, lang) {
  return DATE_ORDER[lang] === "ymd" ? `${y}-${pad(m)}-${pad(d)}` : `${pad(d)}/${pad(m)}/${y}`;
}

export function fmtDate(value, lang = ctx.lang) {
  if (!value) return "";
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(value));
  if (m) return dayText(m[1], m[2], m[3], lang);
  const parts = zoneParts(value);
  return parts ? dayText(parts.year, parts.month, parts.day, lang) : String(value);
}

export function fmtDateTime(value, lang = ctx.lang) {
  if (!value) return "";
  const parts = zoneParts(value);
  return parts ? `${dayText(parts.year, parts.month, parts.day, lang)} ${parts.hour}:${parts.minute}` : String(value);
}

function zoneParts(value) {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return null;
  const format = new Intl.DateTimeFormat("en-GB", {timeZone: ctx.zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
  return Object.fromEntries(format.formatToParts(d).filter((p) => p.type !== "literal").map((p) => [p.type, p.value]));
}

// "dd/mm/yyyy" (or "yyyy-mm-dd", or "d/m/yyyy") -> "yyyy-mm-dd"; null when it is not a real date.
export function parseDay(text) {
  const s = String(text || "").trim();
  let m = /^(\d{4})-(\d{1,2})-(\d{1,2})$/.exec(s);
  let y, mo, d;
  if (m) [, y, mo, d] = m.map(Number);
  else if ((m = /^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$/.exec(s))) [, d, mo, y] = m.map(Number);
  else return null;
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return null;
  return `${y}-${pad(mo)}-${pad(d)}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || seconds === "") return "";
  const s = Math.round(Number(seconds));
  if (!Number.isFinite(s)) return "";
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

export function fmtMinutes(seconds, t = ctx.t) {
  if (seconds === null || seconds === undefined) return "—";
  const m = Math.max(0, Math.round(Number(seconds) / 60));
  return `${m} ${t("minutes")}`;
}

// Local calendar date (YYYY-MM-DD) in the clinic's zone.
export function today(offsetDays = 0) {
  const p = zoneParts(new Date(Date.now() + offsetDays * 86400000).toISOString());
  return `${p.year}-${p.month}-${p.day}`;
}

// ---------- date fields: a text field in the language's format with a small picker ----------
// Every <input type=date> becomes a hidden field that keeps the name and the ISO value (what forms send),
// a text field showing the language's format, and a button that opens the browser's own calendar.
const NATIVE_VALUE = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value");

export function upgradeDates(root) {
  for (const input of root.querySelectorAll("input[type=date]:not([data-picker])")) upgradeDate(input);
}

// A calendar drawn in SVG (an emoji would need a colour-emoji font the clinic's PCs may lack).
function calendarIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({viewBox: "0 0 16 16", width: "16", height: "16", "aria-hidden": "true", focusable: "false"})) svg.setAttribute(k, v);
  for (const d of ["M2 3.5h12v10.5H2z", "M2 6.5h12", "M5 1.5v3M11 1.5v3"]) {
    const path = document.createElementNS(ns, "path");
    for (const [k, v] of Object.entries({d, fill: "none", stroke: "currentColor", "stroke-width": "1.5"})) path.setAttribute(k, v);
    svg.append(path);
  }
  return svg;
}

function upgradeDate(input) {
  const text = el("input", {type: "text", inputmode: "numeric", autocomplete: "off", id: input.id || undefined,
    placeholder: ctx.t("datePlaceholder"), class: "date-text", required: input.required,
    pattern: DATE_ORDER[ctx.lang] === "ymd" ? "\\d{4}-\\d{1,2}-\\d{1,2}" : "\\d{1,2}/\\d{1,2}/\\d{4}",
    "aria-describedby": input.getAttribute("aria-describedby")});
  const picker = el("input", {type: "date", tabindex: "-1", "aria-hidden": "true", "aria-label": ctx.t("pickDate"), class: "date-native", "data-picker": "1"});
  const button = el("button", {type: "button", class: "secondary small date-button", "aria-label": ctx.t("pickDate"), title: ctx.t("pickDate"),
    onclick: () => { NATIVE_VALUE.set.call(picker, hidden.value || ""); try { picker.showPicker(); } catch { picker.focus(); } }}, calendarIcon());
  const hidden = el("input", {type: "hidden", name: input.name, "data-date": "1"});
  const initial = input.value || input.getAttribute("value") || "";
  const show = (iso) => { NATIVE_VALUE.set.call(text, iso ? fmtDate(iso) : ""); };
  Object.defineProperty(hidden, "value", {
    get: () => NATIVE_VALUE.get.call(hidden),
    set: (v) => { NATIVE_VALUE.set.call(hidden, v || ""); show(parseDay(v) || ""); },
  });
  // Scripts that find the field by its id read and write ISO dates, as with a native date input.
  Object.defineProperty(text, "value", {get: () => hidden.value, set: (v) => { hidden.value = v; }});
  text.addEventListener("input", () => {
    const raw = NATIVE_VALUE.get.call(text).trim();
    const iso = parseDay(raw);
    NATIVE_VALUE.set.call(hidden, iso || raw);
    text.setCustomValidity(raw && !iso ? ctx.t("field.date_parsing") : "");
  });
  picker.addEventListener("change", () => { hidden.value = picker.value; text.setCustomValidity(""); text.dispatchEvent(new Event("change", {bubbles: true})); });
  const wrap = el("span", {class: "date-field"}, text, button, picker, hidden);
  input.removeAttribute("id");
  input.replaceWith(wrap);
  hidden.defaultValue = initial;
  hidden.value = initial;
  text.defaultValue = initial ? fmtDate(initial) : "";
}

// ---------- phones: the clinic's national form, E.164 in the title ----------
const NATIONAL_PREFIX = {"84": "0"};

export function fmtPhone(e164) {
  const s = String(e164 || "");
  const m = /^\+(84)(\d+)$/.exec(s);
  if (!m) return s;
  const n = NATIONAL_PREFIX[m[1]] + m[2];
  if (n.length === 10) return `${n.slice(0, 4)} ${n.slice(4, 7)} ${n.slice(7)}`;
  if (n.length === 11) return `${n.slice(0, 3)} ${n.slice(3, 7)} ${n.slice(7)}`;
  return n;
}

export function phoneSpan(phone) {
  const e164 = typeof phone === "string" ? phone : (phone.e164 || phone.number || phone.raw || "");
  return el("span", {class: "phone", title: e164, "data-e164": e164}, fmtPhone(e164));
}

// ---------- dialogs, announcements, errors ----------
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

// The sentence for a failed request, in the user's language, from the problem's stable `code`.
export function errorText(err) {
  const t = ctx.t;
  const problem = err && err.problem && typeof err.problem === "object" ? err.problem : null;
  const code = problem ? problem.code : (err && err.code) || (err && err.status ? "error" : "network");
  const text = t("err." + code);
  // Sentences may name the problem's own fields: {unknown}, {min} ...
  if (text !== "err." + code) return text.replace(/\{(\w+)\}/g, (_, k) => [].concat(problem && problem[k] !== undefined ? problem[k] : "").join(", "));
  return t(problem && problem.status >= 500 ? "err.internal_error" : "err.error");
}

// Shows the sentence in `target` and, when `form` is given, each invalid field's sentence right under it.
export function showError(target, err, form) {
  const text = errorText(err);
  if (target) { target.textContent = text; target.hidden = false; if (err && err.problem && err.problem.detail) target.title = err.problem.detail; }
  if (form) {
    clearFieldErrors(form);
    const problem = (err && err.problem) || {};
    for (const item of problem.errors || [{field: problem.field, code: problem.code}]) {
      if (item.field) markField(form, String(item.field), item.code);
    }
  }
  return text;
}

function markField(form, field, code) {
  // "names.vi" is the input "name_vi" (a name in one language), else the field's last part
  const parts = field.split("."), name = parts[parts.length - 1];
  const joined = parts.length > 1 ? `${parts[parts.length - 2].replace(/s$/, "")}_${name}` : name;
  let input = form.querySelector(`[name="${CSS.escape(joined)}"]`) || form.querySelector(`[name="${CSS.escape(name)}"]`);
  if (!input) return;
  if (input.dataset.date) input = input.parentElement.querySelector(".date-text");
  const t = ctx.t;
  const key = t("field." + code) !== "field." + code ? "field." + code : (t("err." + code) !== "err." + code ? "err." + code : "field.invalid");
  const id = `${input.id || name}-error`;
  const note = el("p", {class: "field-error error", id, "data-field-error": name}, t(key));
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", [input.getAttribute("aria-describedby"), id].filter(Boolean).join(" "));
  (input.closest(".date-field") || input).after(note);
}

export function clearFieldErrors(form) {
  for (const note of form.querySelectorAll("[data-field-error]")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    const rest = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => id && !id.endsWith("-error")).join(" ");
    if (rest) input.setAttribute("aria-describedby", rest); else input.removeAttribute("aria-describedby");
  }
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

// Excel and CSV download links for a list API: the export is the same request (same filters, same rights).
export function exportLinks(path) {
  const sep = path.includes("?") ? "&" : "?";
  const link = (format, key) => el("a", {class: "button secondary small export", href: `${path}${sep}export=${format}&lang=${ctx.lang}`,
    download: "", "data-export": format}, ctx.t(key));
  return el("span", {class: "exports"}, link("xlsx", "exportXlsx"), " ", link("csv", "exportCsv"));
}
