// "Text me when my turn is near": a phone field under the ticket just issued, at the kiosk (by the ticket's own
// link) and at reception (by the ticket's id). Where no SMS gateway is configured the service calls instead
// (GET /api/turn-near/channel), and the words say so. The page marks the place with data-turn-near="kiosk|reception"
// and tells the ticket through #ticket-qr[data-url] (kiosk) or #issued[data-ticket-id] (reception).
import {el} from "/static/clinicall/api.js";

const box = document.querySelector("[data-turn-near]");
const mode = box && box.dataset.turnNear;
let words = null;
let channel = null;

async function suffix() {
  if (channel === null) {
    const data = await fetch("/api/turn-near/channel", {headers: {Accept: "application/json"}})
      .then((r) => r.json()).catch(() => ({}));
    channel = data.channel === "call" ? "call" : "sms";
  }
  return channel === "call" ? "Call" : "";
}

async function dictionary() {
  if (!words) {
    const [common, own] = await Promise.all(["/static/admin/i18n/common.json", "/static/messaging/i18n/messaging.json"]
      .map((url) => fetch(url).then((r) => r.json())));
    words = {vi: {...common.vi, ...own.vi}, en: {...common.en, ...own.en}, zh: {...common.zh, ...own.zh}};
  }
  const lang = words[document.documentElement.lang] ? document.documentElement.lang : "vi";
  return (k) => words[lang][k] ?? words.en[k] ?? k;
}

function ticketRef() {
  if (mode === "kiosk") {
    const url = (document.getElementById("ticket-qr") || {dataset: {}}).dataset.url || "";
    return url ? {path: `/api/t/${encodeURIComponent(url.split("/").pop())}/turn-near`, body: {}} : null;
  }
  const id = Number((document.getElementById("issued") || {dataset: {}}).dataset.ticketId);
  return id ? {path: "/api/turn-near", body: {ticket_id: id}} : null;
}

async function render() {
  const ref = ticketRef();
  if (!ref) { box.replaceChildren(); return; }
  const t = await dictionary();
  const by = await suffix();
  const input = el("input", {id: "turn-near-phone", name: "phone", type: "tel", inputmode: "tel", maxlength: "40",
    autocomplete: "tel"});
  const note = el("p", {class: "small", role: "status", "aria-live": "polite"});
  const form = el("form", {class: "turn-near", novalidate: true},
    el("label", {for: "turn-near-phone"}, t("turnNear.ask" + by)), " ", input, " ",
    el("button", {type: "submit"}, t("turnNear.send" + by)), note);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const response = await fetch(ref.path, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", Accept: "application/json"},
      body: JSON.stringify({...ref.body, phone: input.value.trim()})}).catch(() => null);
    const data = response ? await response.json().catch(() => ({})) : {code: "network"};
    if (response && response.ok) {
      note.className = "small ok";
      note.textContent = data.texted ? t("turnNear.sentNow" + by) : t("turnNear.done" + by);
    } else {
      note.className = "small error";
      note.textContent = t("err." + (data.code || "error")) === "err." + data.code ? t("err.error") : t("err." + (data.code || "error"));
    }
  });
  box.replaceChildren(form);
}

if (box) {
  const watched = document.getElementById(mode === "kiosk" ? "ticket-qr" : "issued");
  if (watched) new MutationObserver(render).observe(watched, {attributes: true, attributeFilter: ["data-url", "data-ticket-id"]});
}
