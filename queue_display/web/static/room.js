// Room control for doctors and reception: every operation on the current ticket and on any other number
// (call next, call a given number, recall, start, done, hold, skip, resume, restore, transfer), each with a key.
import {api, el, translate} from "/static/clinicall/api.js";
import {DisplayFeed, queryParam, roomLabel, serviceLabel, waitRangeText} from "/static/queue_display/feed.js";
import {LABELS, LANGUAGES} from "/static/queue_display/labels.js";
import {ScreenState} from "/static/queue_display/state.js";

const lang = LANGUAGES.includes(queryParam("lang")) ? queryParam("lang") : (localStorage.getItem("clinicall.lang") || "vi");
const t = translate(LABELS, LANGUAGES.includes(lang) ? lang : "vi");
const roomId = Number(queryParam("room"));
const state = new ScreenState();
const $ = (id) => document.getElementById(id);
const ASIDE = ["held", "skipped", "noshow"];
let services = [];
let roundTripServices = new Set();  // served by a lab or imaging room: where a doctor usually sends patients
let today = [];  // today's tickets of this room's services (for set-aside tickets and typed numbers)
let busy = false;
let asideTimer = null;

const listOf = (data, key) => (Array.isArray(data) ? data : data[key] || data.items || []);

function current() { return state.current.get(roomId) || null; }
function room() { return state.rooms.get(roomId) || null; }
function roomOpen() { const r = room(); return !r || r.open !== false; }
function roomServiceIds() { const r = room(); return r && r.service_ids ? r.service_ids : [...state.services.keys()]; }

function say(text, kind = "ok") { $("message").textContent = text; $("message").className = kind; }

function backText(ticket) {
  const back = ticket && ticket.back_to;
  if (!back) return "";
  const where = back.room ? roomLabel(back.room, lang, t) : (back.service_names?.[lang] || back.service_name);
  return back.now ? t("back_now").replace("{room}", where) : t("back_after").replace("{room}", where);
}

function transferNote() {
  const ticket = current();
  if (ticket && ticket.back_to && !ticket.back_to.now) return backText(ticket);  // a round trip already under way
  const here = room() ? roomLabel(room(), lang, t) : "";
  return $("transfer-return").checked ? t("will_return").replace("{room}", here) : t("will_not_return");
}

function actionButton(label, number, onclick) {
  return el("button", {type: "button", class: "secondary small", "aria-label": `${label} ${number}`, onclick}, label);
}

function render() {
  const r = room();
  $("room-title").textContent = r ? roomLabel(r, lang, t) : `${t("room")} ${roomId}`;
  const ticket = current();
  $("current-number").textContent = ticket ? ticket.number : t("no_current");
  $("current-meta").textContent = ticket ? [t(ticket.status === "in_service" ? "in_service" : "called"), ticket.service_name,
    ticket.priority && ticket.priority !== "normal" ? t(`prio_${ticket.priority}`) : "", ticket.returning ? t("returning") : ""]
    .filter(Boolean).join(" · ") : "";
  $("current-back").textContent = ticket ? backText(ticket) : "";
  for (const id of ["recall", "start", "done", "skip", "hold"]) $(id).disabled = busy || !ticket;
  $("call-next").disabled = busy;
  $("open-room").disabled = busy || !room();
  $("open-room-label").textContent = t(roomOpen() ? "close_room" : "open_room");
  $("room-state").textContent = roomOpen() ? "" : t("room_closed_note");
  $("transfer").querySelector("button").disabled = busy || !ticket;
  $("transfer-note").textContent = transferNote();
  $("waiting").replaceChildren(...state.waitingFor(roomServiceIds()).map((w) => el("tr", {"data-number": w.number},
    el("td", {}, el("strong", {}, w.number), w.returning ? el("span", {class: "tag"}, ` ${t("returning")}`) : null),
    el("td", {}, w.priority ? t(`prio_${w.priority}`) : ""),
    el("td", {}, waitRangeText(w, t)),
    el("td", {}, actionButton(t("call_this"), w.number, () => act("call", w)), " ",
      actionButton(t("hold"), w.number, () => act("hold", w))))));
  const aside = today.filter((x) => ASIDE.includes(x.status));
  $("aside").replaceChildren(...(aside.length ? aside.map((x) => el("tr", {"data-number": x.number},
    el("td", {}, el("strong", {}, x.number)), el("td", {}, t(`status_${x.status}`)),
    el("td", {}, x.status === "held" ? actionButton(t("resume"), x.number, () => act("resume", x))
      : actionButton(t("restore"), x.number, () => act("restore", x)),
      x.status !== "noshow" ? [" ", actionButton(t("call_this"), x.number, () => act("call", x))] : null)))
    : [el("tr", {}, el("td", {colspan: "3", class: "muted"}, t("aside_empty")))]));
}

const ACTION_WORDS = {"call-next": "called", call: "called", recall: "recall", start: "in_service", done: "done", skip: "skipped",
  hold: "held", resume: "resumed", restore: "restored", transfer: "transfer"};

function problemText(err) {
  const code = err.problem && err.problem.code;
  if (code === "conflict" && err.problem.ticket_status) return t("err_state").replace("{status}", t(`status_${err.problem.ticket_status}`));
  if (code && t(`err_${code}`) !== `err_${code}`) return t(`err_${code}`);
  return err.message;
}

function request(kind, ticket) {
  if (kind === "call-next") return [`/api/rooms/${roomId}/call-next`, {}];
  if (kind === "call") return [`/api/tickets/${ticket.id}/call`, {room_id: roomId}];
  if (kind === "transfer") {
    return [`/api/tickets/${ticket.id}/transfer`, {service_id: Number($("transfer-service").value), return_to_room: $("transfer-return").checked}];
  }
  return [`/api/tickets/${ticket.id}/${kind}`, {}];
}

async function act(kind, ticket = current()) {
  if (busy || (kind !== "call-next" && !ticket)) return;
  if (kind === "transfer" && !$("transfer-service").value) { say(t("choose_service"), "error"); $("transfer-service").focus(); return; }
  const [path, body] = request(kind, ticket);
  busy = true;
  render();
  try {
    const data = await api(path, {method: "POST", body});
    const changed = data.ticket;
    if (changed) {
      state.applyEvent(kind === "call-next" || kind === "call" ? "ticket.called" : `ticket.${changed.status}`, {ticket: changed});
      const extra = kind === "transfer" ? ` → ${changed.number} ${changed.service_name || ""}. ${backText(changed)}`
        : kind === "recall" ? ` (${changed.recall_count})` : "";
      say(`${ticket && kind !== "call-next" ? ticket.number : changed.number}: ${t(ACTION_WORDS[kind])}${extra}`);
    } else {
      say(t("nobody"));
    }
    loadToday();
  } catch (err) {
    if (err.problem && err.problem.code === "room_closed" && room()) state.rooms.set(roomId, {...room(), open: false});
    say(`${t("error")}: ${problemText(err)}`, "error");
  } finally {
    busy = false;
    render();
  }
}

// Opens or closes this room (a late start, a break, the end of the day): closed, nobody is called to it, and
// the patients due back to it from the lab go to another room of the service.
async function toggleOpen() {
  if (busy || !room()) return;
  const open = !roomOpen();
  busy = true;
  render();
  try {
    const data = await api(`/api/rooms/${roomId}`, {method: "PATCH", body: {open}});
    state.rooms.set(roomId, {...room(), ...data.room});
    say(t(open ? "room_now_open" : "room_now_closed"));
  } catch (err) {
    say(`${t("error")}: ${problemText(err)}`, "error");
  } finally {
    busy = false;
    render();
  }
}

// A typed number: this room's waiting line first, then today's tickets of its services.
function findNumber() {
  const wanted = $("other-number").value.trim().toUpperCase();
  if (!wanted) return null;
  const waiting = state.waitingFor(roomServiceIds()).find((x) => x.number === wanted);
  return waiting || today.find((x) => x.number === wanted) || null;
}

// With no number typed, U and K take the latest held, or skipped / no-show, ticket of this room's services.
function actOnNumber(kind, fallback = []) {
  let ticket = findNumber();
  if (!ticket && !$("other-number").value.trim()) ticket = today.find((x) => fallback.includes(x.status)) || null;
  if (!ticket) { say(t("unknown_number"), "error"); $("other-number").focus(); return; }
  $("other-number").value = "";
  $("other-number").blur();  // the shortcut keys work again at once
  act(kind, ticket);
}

async function loadToday() {
  const ids = roomServiceIds();
  if (!ids.length) return;
  try {
    today = listOf(await api(`/api/tickets?service_id=${ids.join(",")}`), "tickets");
  } catch { return; }
  render();
}

function fillTransferTargets() {
  const own = new Set(roomServiceIds());
  const others = services.filter((s) => s.active !== false && !own.has(s.id));
  others.sort((a, b) => Number(roundTripServices.has(b.id)) - Number(roundTripServices.has(a.id)));
  $("transfer-service").replaceChildren(el("option", {value: ""}, `— ${t("choose_service")} —`),
    ...others.map((s) => el("option", {value: s.id}, serviceLabel(s, lang))));
  const first = others.find((s) => roundTripServices.has(s.id));
  $("transfer-service").value = first ? String(first.id) : "";  // the lab or imaging, never this room's own service
}

async function pickRoom() {
  const rooms = listOf(await api("/api/rooms"), "rooms");
  const select = $("room-select");
  select.replaceChildren(...rooms.map((r) => el("option", {value: r.id}, roomLabel(r, lang, t))));
  $("pick").hidden = false;
  $("pick").addEventListener("submit", (event) => { event.preventDefault(); location.search = `?room=${select.value}`; });
  select.focus();
}

const KEYS = {n: "call-next", r: "recall", b: "start", d: "done", s: "skip", h: "hold"};

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName)) {
    if (event.key === "Escape") event.target.blur();
    if (event.key === "Enter" && event.target.id === "transfer-service") { event.preventDefault(); event.target.blur(); act("transfer"); }
    return;
  }
  const key = event.key.toLowerCase();
  if (KEYS[key]) { event.preventDefault(); act(KEYS[key]); }
  else if (key === "o") { event.preventDefault(); toggleOpen(); }
  else if (key === "t") { event.preventDefault(); $("transfer-service").focus(); }
  else if (key === "g") { event.preventDefault(); $("other-number").focus(); }
  else if (key === "u") { event.preventDefault(); actOnNumber("resume", ["held"]); }
  else if (key === "k") { event.preventDefault(); actOnNumber("restore", ["noshow", "skipped"]); }
}

function wire() {
  for (const id of ["call-next", "recall", "start", "done", "skip", "hold"]) $(id).addEventListener("click", () => act(id));
  $("open-room").addEventListener("click", toggleOpen);
  $("transfer").addEventListener("submit", (event) => { event.preventDefault(); act("transfer"); });
  $("transfer-return").addEventListener("change", render);
  $("other").addEventListener("submit", (event) => { event.preventDefault(); actOnNumber("call"); });
  $("other-hold").addEventListener("click", () => actOnNumber("hold"));
  $("other-resume").addEventListener("click", () => actOnNumber("resume", ["held"]));
  $("other-restore").addEventListener("click", () => actOnNumber("restore", ["noshow", "skipped"]));
  document.addEventListener("keydown", onKey);
}

async function start() {
  if (!roomId) { await pickRoom(); return; }
  $("control").hidden = false;
  const [serviceData, roomData] = await Promise.all([api("/api/services"), api("/api/rooms")]);
  services = listOf(serviceData, "services");
  const rooms = listOf(roomData, "rooms");
  for (const r of rooms) state.rooms.set(r.id, r);
  roundTripServices = new Set(rooms.filter((r) => r.kind === "lab" || r.kind === "imaging").flatMap((r) => r.service_ids));
  fillTransferTargets();
  // a doctor's patient comes back from the lab; a lab's own walk-in sent on to X-ray does not come back to the lab
  // (a patient already on a round trip keeps their way back to their doctor either way)
  $("transfer-return").checked = !room() || room().kind === "consult";
  wire();
  const feed = new DisplayFeed({
    rooms: String(roomId),
    onStatus: (name) => { $("status").textContent = t(name); },
    onSnapshot: (data) => { state.applySnapshot(data); render(); loadToday(); },
    isStale: () => state.takeStale(),
    onEvent: (frame) => {
      state.applyEvent(frame.type, frame.data);
      render();
      if (frame.type.startsWith("ticket.")) { clearTimeout(asideTimer); asideTimer = setTimeout(loadToday, 200); }
    },
  });
  window.clinicallRoom = {state, feed};
  render();
  feed.start();
  document.body.dataset.ready = "1";
}

start().catch((err) => say(`${t("error")}: ${err.message}`, "error"));
