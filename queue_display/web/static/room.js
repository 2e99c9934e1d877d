// Room control for doctors and reception: call next, recall, start, done, skip, transfer, with shortcuts.
import {api, el, translate} from "/static/clinicall/api.js";
import {DisplayFeed, queryParam, roomLabel, serviceLabel, waitRangeText} from "/static/queue_display/feed.js";
import {LABELS, LANGUAGES} from "/static/queue_display/labels.js";
import {ScreenState} from "/static/queue_display/state.js";

const lang = LANGUAGES.includes(queryParam("lang")) ? queryParam("lang") : (localStorage.getItem("clinicall.lang") || "vi");
const t = translate(LABELS, LANGUAGES.includes(lang) ? lang : "vi");
const roomId = Number(queryParam("room"));
const state = new ScreenState();
const $ = (id) => document.getElementById(id);
let services = [];
let busy = false;

const listOf = (data, key) => (Array.isArray(data) ? data : data[key] || data.items || []);

function current() { return state.current.get(roomId) || null; }

function say(text, kind = "ok") { $("message").textContent = text; $("message").className = kind; }

function render() {
  const room = state.rooms.get(roomId);
  $("room-title").textContent = room ? roomLabel(room, lang, t) : `${t("room")} ${roomId}`;
  const ticket = current();
  $("current-number").textContent = ticket ? ticket.number : t("no_current");
  $("current-meta").textContent = ticket ? `${t(ticket.status === "in_service" ? "in_service" : "called")} · ${ticket.service_name || ""}` : "";
  for (const id of ["recall", "start", "done", "skip"]) $(id).disabled = !ticket;
  $("transfer").querySelector("button").disabled = !ticket;
  const serviceIds = room && room.service_ids ? room.service_ids : [...state.services.keys()];
  $("waiting").replaceChildren(...state.waitingFor(serviceIds).map((w) => el("tr", {},
    el("td", {}, w.number), el("td", {}, w.priority ? t(`prio_${w.priority}`) : ""),
    el("td", {}, waitRangeText(w, t)))));
}

const ACTION_WORDS = {"call-next": "called", recall: "recall", start: "in_service", done: "done", skip: "skipped", transfer: "transfer"};
const BUTTONS = ["call-next", "recall", "start", "done", "skip"];

function setBusy(value) {
  busy = value;
  for (const id of BUTTONS) $(id).disabled = value;
  $("transfer").querySelector("button").disabled = value;
  if (!value) render();
}

async function act(kind) {
  if (busy) return;
  const ticket = current();
  let path;
  let body;
  if (kind === "call-next") path = `/api/rooms/${roomId}/call-next`;
  else if (!ticket) return;
  else if (kind === "transfer") {
    path = `/api/tickets/${ticket.id}/transfer`;
    body = {service_id: Number($("transfer-service").value), return_to_room: $("transfer-return").checked};
  } else path = `/api/tickets/${ticket.id}/${kind}`;
  setBusy(true);
  try {
    const data = await api(path, {method: "POST", body: body ?? {}});
    const changed = data.ticket;
    if (changed) {
      state.applyEvent(kind === "call-next" ? "ticket.called" : `ticket.${changed.status}`, {ticket: changed});
      say(`${changed.number}: ${t(ACTION_WORDS[kind])}`);
    } else {
      say(t("nobody"));
    }
  } catch (err) {
    say(`${t("error")}: ${err.message}`, "error");
  } finally {
    setBusy(false);
  }
}

async function pickRoom() {
  const rooms = listOf(await api("/api/rooms"), "rooms");
  const select = $("room-select");
  select.replaceChildren(...rooms.map((room) => el("option", {value: room.id}, roomLabel(room, lang, t))));
  $("pick").hidden = false;
  $("pick").addEventListener("submit", (event) => { event.preventDefault(); location.search = `?room=${select.value}`; });
  select.focus();
}

async function start() {
  if (!roomId) { await pickRoom(); return; }
  $("control").hidden = false;
  services = listOf(await api("/api/services"), "services");
  $("transfer-service").replaceChildren(...services.map((s) => el("option", {value: s.id}, serviceLabel(s, lang))));
  for (const [id, kind] of [["call-next", "call-next"], ["recall", "recall"], ["start", "start"], ["done", "done"], ["skip", "skip"]]) {
    $(id).addEventListener("click", () => act(kind));
  }
  $("transfer").addEventListener("submit", (event) => { event.preventDefault(); act("transfer"); });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) return;
    const keys = {n: "call-next", r: "recall", b: "start", d: "done", s: "skip"};
    const kind = keys[event.key.toLowerCase()];
    if (kind) { event.preventDefault(); act(kind); } else if (event.key.toLowerCase() === "t") { event.preventDefault(); $("transfer-service").focus(); }
  });
  const feed = new DisplayFeed({
    rooms: String(roomId),
    onStatus: (name) => { $("status").textContent = t(name); },
    onSnapshot: (data) => { state.applySnapshot(data); render(); },
    onEvent: (frame) => { state.applyEvent(frame.type, frame.data); render(); },
  });
  window.clinicallRoom = {state, feed};
  render();
  feed.start();
}

start().catch((err) => say(`${t("error")}: ${err.message}`, "error"));
