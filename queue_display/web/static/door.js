// The room door: the number now called to (or served in) this room, and the next ones in its line.
import {el, translate} from "/static/clinicall/api.js";
import {DisplayFeed, queryParam, roomLabel, waitRangeText} from "/static/queue_display/feed.js";
import {LABELS, LANGUAGES} from "/static/queue_display/labels.js";
import {ScreenState} from "/static/queue_display/state.js";

const lang = LANGUAGES.includes(queryParam("lang")) ? queryParam("lang") : "vi";
const t = translate(LABELS, lang);
const roomId = Number(queryParam("room"));
const state = new ScreenState();
const $ = (id) => document.getElementById(id);
let timeZone;  // the clinic's, from the snapshot: a TV set to another zone still shows local clinic time
let lastStatus = "connecting";
let shownId = undefined;  // the ticket on screen; a new one flashes (not the first one after loading)

// A patient back from the lab waits for the doctor who sent them: not "next" at any other door.
function forAnotherRoom(ticket) {
  const back = ticket.back_to;
  return Boolean(back && back.now && back.room && back.room.id !== roomId);
}

function render() {
  if (state.clinic) $("clinic").textContent = state.clinic;
  const room = state.rooms.get(roomId);
  $("room-title").textContent = room ? roomLabel(room, lang, t) : `${t("room")} ${roomId || ""}`;
  const current = state.current.get(roomId);
  $("current").textContent = current ? current.number : "—";
  const id = current ? current.id : null;
  if (shownId !== undefined && id !== null && id !== shownId) {
    const box = $("current").parentElement;
    box.classList.remove("flash"); void box.offsetWidth; box.classList.add("flash");
  }
  shownId = id;
  const serviceIds = room && room.service_ids ? room.service_ids : [...state.services.keys()];
  // a closed room calls nobody: its door lists no one as next (room state follows live, queue.room_state)
  const upcoming = room && room.open === false ? [] : state.waitingFor(serviceIds)
    .filter((ticket) => !forAnotherRoom(ticket)).slice(0, 3);
  $("next").dataset.closed = String(Boolean(room && room.open === false));
  $("next").replaceChildren(...(room && room.open === false ? [t("door_closed")] : upcoming.length ? upcoming.map((ticket) => el("span", {class: "next-ticket"},
    el("span", {class: "num"}, ticket.number), el("span", {class: "eta"}, waitRangeText(ticket, t)))) : [t("none")]));
}

function tick() {
  $("clock").textContent = new Date().toLocaleTimeString(lang === "zh" ? "zh-CN" : lang === "en" ? "en-GB" : "vi-VN", {hour: "2-digit", minute: "2-digit", timeZone});
}

const feed = new DisplayFeed({
  token: queryParam("token"), rooms: roomId ? String(roomId) : null,
  onStatus: (name) => { lastStatus = name; $("status").dataset.state = name; $("status").textContent = t(name); },
  onSnapshot: (data) => { timeZone = data.timezone || undefined; tick(); state.applySnapshot(data); render(); },
  onEvent: (frame) => { state.applyEvent(frame.type, frame.data); render(); },
  isStale: () => state.takeStale(),
});
window.clinicallDoor = {state, feed, status: () => lastStatus};
tick();
setInterval(tick, 1000);
feed.start();
