// The display feed: one websocket to /ws/display that reconnects by itself (with back-off and jitter)
// and starts every connection with a full snapshot, so a screen is never out of date after a gap.
export class DisplayFeed {
  // isStale(): true when the events just applied left the screen needing a snapshot (it is asked for then).
  constructor({token = null, rooms = null, services = null, onSnapshot, onEvent, onStatus = () => {}, isStale = () => false}) {
    this.token = token; this.rooms = rooms; this.services = services;
    this.onSnapshot = onSnapshot; this.onEvent = onEvent; this.onStatus = onStatus; this.isStale = isStale;
    this.delay = 500; this.maxDelay = 15000; this.heartbeat = 15; this.ws = null; this.stopped = false;
    this.connects = 0; this.lastMessage = Date.now(); this.watchdog = null; this.retry = null;
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams();
    if (this.token) query.set("token", this.token);
    if (this.rooms) query.set("rooms", this.rooms);
    if (this.services) query.set("services", this.services);
    const qs = query.toString();
    return `${proto}//${location.host}/ws/display${qs ? "?" + qs : ""}`;
  }

  start() { this.stopped = false; this.connect(); return this; }

  stop() { this.stopped = true; clearTimeout(this.retry); clearInterval(this.watchdog); if (this.ws) this.ws.close(); }

  connect() {
    this.onStatus("connecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => { this.connects += 1; this.lastMessage = Date.now(); };
    ws.onmessage = (message) => {
      this.lastMessage = Date.now();
      let frame;
      try { frame = JSON.parse(message.data); } catch { return; }
      if (frame.type === "ping") return;
      if (frame.type === "snapshot") {
        this.delay = 500;
        this.heartbeat = frame.data.heartbeat_seconds || this.heartbeat;
        this.onStatus("live");
        this.onSnapshot(frame.data);
      } else if (frame.type === "batch") {
        for (const event of frame.events || []) this.onEvent(event);  // one operation's events, in order
      } else {
        this.onEvent(frame);
      }
      if (frame.type !== "snapshot" && this.isStale() && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({type: "resync"}));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.onStatus("offline");
      const wait = this.delay * (0.75 + Math.random() * 0.5);
      this.delay = Math.min(this.delay * 2, this.maxDelay);
      this.retry = setTimeout(() => this.connect(), wait);
    };
    ws.onerror = () => {};
    clearInterval(this.watchdog);
    // A connection that went silent (no ping for three heartbeats) is dead even if the socket does not know it yet.
    this.watchdog = setInterval(() => {
      if (this.ws === ws && ws.readyState === WebSocket.OPEN && Date.now() - this.lastMessage > this.heartbeat * 3000) ws.close();
    }, 2000);
  }
}

export function queryParam(name) { return new URLSearchParams(location.search).get(name); }

export function roomLabel(room, lang, t) {
  if (!room) return "";
  const names = room.names || {};
  return names[lang] || names.vi || room.name || `${t("room")} ${room.number ?? ""}`.trim();
}

export function serviceLabel(service, lang) {
  if (!service) return "";
  const names = service.names || {};
  return names[lang] || names.vi || service.name || service.service_name || service.prefix || "";
}

// "~12 phút", or "sắp tới" when under a minute; "" when the wait is unknown.
export function waitText(seconds, t) {
  const minutes = waitMinutes(seconds);
  if (minutes === null) return "";
  return minutes < 1 ? t("soon") : `~${minutes} ${t("minutes")}`;
}

// A waiting ticket's range, "15–25 phút" (the real wait falls in it 4 times out of 5); "sắp tới" when
// even its upper end is under a minute; the single estimate when no range is stored.
export function waitRangeText(ticket, t) {
  const range = ticket && ticket.estimated_wait_range;
  if (!Array.isArray(range) || range.length !== 2) return waitText(ticket ? ticket.estimated_wait_seconds : null, t);
  const low = waitMinutes(range[0]);
  const high = waitMinutes(range[1]);
  if (low === null || high === null) return waitText(ticket.estimated_wait_seconds, t);
  if (high < 1) return t("soon");
  return low === high ? `~${high} ${t("minutes")}` : `${low}–${high} ${t("minutes")}`;
}

export function waitMinutes(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return null;
  return Math.max(0, Math.round(Number(seconds) / 60));
}
