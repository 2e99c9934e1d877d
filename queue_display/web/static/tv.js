// The waiting-room TV: now calling (flashing), last calls, waiting lines with estimated waits, clock, sound.
import {el, translate} from "/static/clinicall/api.js";
import {DisplayFeed, queryParam, roomLabel, serviceLabel, waitRangeText} from "/static/queue_display/feed.js";
import {LABELS, LANGUAGES} from "/static/queue_display/labels.js";
import {ScreenState} from "/static/queue_display/state.js";

const token = queryParam("token");
let lang = LANGUAGES.includes(queryParam("lang")) ? queryParam("lang") : (localStorage.getItem("clinicall.tv.lang") || "vi");
if (!LANGUAGES.includes(lang)) lang = "vi";
let t = translate(LABELS, lang);
const state = new ScreenState();
const audio = {enabled: false, queue: [], playing: false, played: [], errors: []};
let lastStatus = "connecting";
let flashTimer = null;
const $ = (id) => document.getElementById(id);
let timeZone;  // the clinic's, from the snapshot: a TV set to another zone still shows local clinic time
let shownCall;  // the call on the big number ("id:called_at:recalls"); undefined before the first snapshot
const RECENT_CALL_MS = 120000;  // a call this recent, made while the TV was cut off, still flashes on reconnecting

const callKey = (ticket) => (ticket ? `${ticket.id}:${ticket.called_at}:${ticket.recall_count || 0}` : null);

function renderNow(ticket, flash) {
  shownCall = callKey(ticket);
  $("now-number").textContent = ticket ? ticket.number : "—";
  $("now-room").textContent = ticket && ticket.room ? roomLabel(ticket.room, lang, t) : "";
  if (flash) {
    const box = $("now");
    box.classList.remove("flash"); void box.offsetWidth; box.classList.add("flash");
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => box.classList.remove("flash"), 5000);
    $("announce").textContent = `${t("invite")} ${ticket.number} ${t("to")} ${roomLabel(ticket.room, lang, t)}`;
  }
}

// "Sau đó quay lại Phòng khám số 3" under a lab ticket; "Quay lại Phòng khám số 3" once on the way back.
function backText(back) {
  const where = back.room ? roomLabel(back.room, lang, t) : serviceLabel({names: back.service_names, name: back.service_name}, lang);
  return t(back.now ? "back_now" : "back_after").replace("{room}", where);
}

function renderCalls() {
  $("calls").replaceChildren(...state.standingCalls().slice(1, 9).map((ticket) => el("li", {},
    el("span", {class: "num"}, ticket.number), el("span", {}, roomLabel(ticket.room, lang, t)))));
}

function renderServices() {
  const boxes = [];
  for (const service of state.services.values()) {
    const items = service.waiting.slice(0, 6).map((ticket) => el("li", {},
      el("span", {}, el("span", {class: "num"}, ticket.number),
        ticket.masked_name ? el("span", {class: "masked"}, ticket.masked_name) : null,
        ticket.back_to ? el("span", {class: "back"}, backText(ticket.back_to)) : null),
      el("span", {class: "eta"}, waitRangeText(ticket, t))));
    boxes.push(el("div", {class: "service", "data-service": service.id},
      el("h3", {}, `${serviceLabel(service, lang)} (${service.waiting.length})`,
        waitRangeText(service, t) ? el("span", {class: "eta newcomer"}, ` · ${t("newcomer")}: ${waitRangeText(service, t)}`) : null),
      items.length ? el("ul", {class: "waiting"}, items) : el("p", {class: "eta"}, t("nobody"))));
  }
  $("services").replaceChildren(...boxes);
}

function renderAll() {
  if (state.clinic) $("clinic").textContent = state.clinic;
  renderNow(state.standingCalls()[0] || null, false);
  renderCalls();
  renderServices();
}

function setStatus(name) {
  lastStatus = name;
  const badge = $("status");
  badge.dataset.state = name;
  badge.textContent = t(name);
}

function setLang(next) {
  lang = next;
  localStorage.setItem("clinicall.tv.lang", lang);
  t = translate(LABELS, lang);
  for (const b of document.querySelectorAll("[data-lang]")) b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
  setStatus(lastStatus);
  renderAll();
}

function tick() {
  const now = new Date();
  $("clock").textContent = now.toLocaleTimeString(lang === "zh" ? "zh-CN" : lang === "en" ? "en-GB" : "vi-VN", {hour: "2-digit", minute: "2-digit", timeZone});
  $("clock").dateTime = now.toISOString();
}

// Clips are fetched whole (with the display token as a bearer header, so it never sits in a media URL),
// then played one after another from memory.
async function playNext() {
  if (audio.playing || !audio.queue.length) return;
  const url = audio.queue.shift();
  audio.playing = true;
  const done = () => { audio.playing = false; playNext(); };
  try {
    const response = await fetch(url, {credentials: "same-origin", headers: token ? {Authorization: `Bearer ${token}`} : {}});
    if (!response.ok) throw new Error(`clip ${response.status}`);
    const blobUrl = URL.createObjectURL(await response.blob());
    const player = new Audio(blobUrl);
    player.onended = () => { URL.revokeObjectURL(blobUrl); done(); };
    player.onerror = player.onended;
    await player.play();
    audio.played.push(url);
  } catch (err) {
    audio.errors.push(String(err));
    done();
  }
}

function announce(data) {
  if (!audio.enabled || typeof data.audio_url !== "string" || !data.audio_url.startsWith("/audio/")) return;
  audio.queue.push(data.audio_url);
  if (audio.queue.length > 4) audio.queue.shift();  // a backlog of old calls helps nobody: keep the latest
  playNext();
}

$("sound").addEventListener("click", () => {
  audio.enabled = true;
  const button = $("sound");
  button.textContent = t("sound_on");
  button.setAttribute("aria-pressed", "true");
});
for (const b of document.querySelectorAll("[data-lang]")) b.addEventListener("click", () => setLang(b.dataset.lang));

const feed = new DisplayFeed({
  token, rooms: queryParam("rooms"), services: queryParam("services"),
  onStatus: setStatus,
  onSnapshot: (data) => {
    timeZone = data.timezone || undefined; tick();
    const before = shownCall;
    state.applySnapshot(data);
    renderAll();
    // a call made while the TV was cut off (network, restart) is still news: flash it as a live one
    const now = state.standingCalls()[0];
    if (before !== undefined && now && callKey(now) !== before && now.called_at
        && Date.parse(data.at) - Date.parse(now.called_at) < RECENT_CALL_MS) renderNow(now, true);
  },
  isStale: () => state.takeStale(),
  onEvent: (frame) => {
    if (frame.type === "announcement.ready") { announce(frame.data); return; }
    const called = state.applyEvent(frame.type, frame.data);
    if (called) renderNow(called, true); else renderNow(state.standingCalls()[0] || null, false);
    renderCalls();
    renderServices();
  },
});
window.clinicallTv = {state, audio, feed};
setLang(lang);
tick();
setInterval(tick, 1000);
feed.start();
