// The kiosk: choose a service, get a ticket with its number, estimated wait and a QR code to the status page.
import {el, translate} from "/static/clinicall/api.js";
import {queryParam, serviceLabel, waitRangeText} from "/static/queue_display/feed.js";
import {LABELS, LANGUAGES} from "/static/queue_display/labels.js";

let lang = LANGUAGES.includes(queryParam("lang")) ? queryParam("lang") : "vi";
let t = translate(LABELS, lang);
let services = [];
let resetTimer = null;
let timeZone;  // the clinic's: the printed time is the clinic's local time, whatever the kiosk's own clock zone
const $ = (id) => document.getElementById(id);

async function fetchJson(path, init = {}) {
  const response = await fetch(path, {credentials: "same-origin", headers: {Accept: "application/json", ...(init.headers || {})}, ...init});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { const err = new Error(data.detail || response.statusText); err.code = data.code; throw err; }
  return data;
}

// A closed service says so, with its hours, and takes no number (reception can still give one).
function serviceMeta(service) {
  if (service.open === false) return t("service_closed").replace("{hours}", `${service.opens_at || ""}–${service.closes_at || ""}`);
  const wait = waitRangeText(service, t);  // what a walk-in taking a number now waits (its 80% range)
  return `${service.waiting_count ?? 0} ${t("people_waiting")}` + (wait ? ` · ${wait}` : "");
}

// The sentence for a refused ticket, in the kiosk's language (the server's detail is for staff and logs).
function errorText(err) {
  const key = `err_${err.code}`;
  return t(key) !== key ? t(key) : t("err_kiosk");
}

function renderServices() {
  $("services").replaceChildren(...services.map((service) => {
    const meta = serviceMeta(service);
    return el("li", {}, el("button", {type: "button", "data-service": service.id, "data-closed": service.open === false, disabled: service.open === false, onclick: () => take(service)},
      el("span", {class: "name"}, serviceLabel(service, lang)), el("span", {class: "meta"}, meta)));
  }));
}

async function load() {
  try {
    const data = await fetchJson("/kiosk/services");
    services = data.services;
    timeZone = data.timezone || undefined;
    $("clinic").textContent = data.clinic;
    $("ticket-clinic").textContent = data.clinic;
    renderServices();
  } catch (err) { $("error").textContent = `${t("error")}: ${err.message}`; }
}

async function take(service) {
  $("error").textContent = "";
  for (const b of document.querySelectorAll("#services button")) b.disabled = true;
  try {
    const data = await fetchJson("/api/kiosk/tickets", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({service_id: service.id, kiosk: queryParam("kiosk")})});
    show(data.ticket, data.ticket.status_url, service);
    // printed on the kiosk's thermal printer: no browser print; not printed (or no printer): the browser's
    $("print").hidden = data.printed === true;
  } catch (err) {
    $("error").textContent = errorText(err);
    if (err.code === "service_closed") load();
  } finally {
    for (const b of document.querySelectorAll("#services button")) b.disabled = b.hasAttribute("data-closed");
  }
}

function show(ticket, url, service) {
  $("ticket-number").textContent = ticket.number;
  $("ticket-service").textContent = serviceLabel(service, lang) || ticket.service_name || "";
  $("ticket-wait").textContent = waitRangeText(ticket, t) || t("none");
  $("ticket-qr").src = ticket.qr_svg_url;
  $("ticket-qr").alt = url;
  $("ticket-qr").dataset.url = url;
  $("ticket-time").textContent = new Date(ticket.issued_at || Date.now())
    .toLocaleString(lang === "zh" ? "zh-CN" : lang === "en" ? "en-GB" : "vi-VN", {timeZone});
  $("choose").hidden = true;
  $("ticket").hidden = false;
  if (!$("print").hidden) $("print").focus();
  clearTimeout(resetTimer);
  resetTimer = setTimeout(reset, 60000);
}

function reset() { $("ticket").hidden = true; $("choose").hidden = false; load(); }

function setLang(next) {
  lang = next;
  t = translate(LABELS, lang);
  for (const b of document.querySelectorAll("[data-lang]")) b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
  renderServices();
}

$("print").addEventListener("click", () => window.print());
$("again").addEventListener("click", reset);
for (const b of document.querySelectorAll("[data-lang]")) b.addEventListener("click", () => setLang(b.dataset.lang));
setLang(lang);
load();
setInterval(() => { if ($("ticket").hidden) load(); }, 60000);  // services open and close, lines move
