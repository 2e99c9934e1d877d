// What a screen knows about the waiting room, rebuilt from each snapshot and kept current by events.
const ACTIVE_IN_ROOM = new Set(["called", "in_service"]);
// A call that no longer stands: the ticket went back to a line, was set aside or its day ended.
const CALL_TAKEN_BACK = new Set(["waiting", "held", "skipped", "noshow", "expired"]);

export class ScreenState {
  constructor() { this.clear(); }

  clear() {
    this.rooms = new Map();      // id -> room {id, kind, number, names, service_ids, ...}
    this.services = new Map();   // id -> {id, names, prefix, waiting: [ticket]}
    this.current = new Map();    // room id -> ticket called to / served in that room
    this.recent = [];            // called tickets, newest first
    this.clinic = "";
    this.stale = false;
  }

  applySnapshot(data) {
    this.clear();
    this.clinic = (data.clinic && typeof data.clinic === "object" ? data.clinic.name : data.clinic) || "";
    for (const room of data.rooms || []) {
      this.rooms.set(room.id, room);
      const ticket = room.current || room.ticket || room.serving || null;
      if (ticket) this.current.set(room.id, {...ticket, room: ticket.room || roomRef(room)});
    }
    for (const service of data.services || []) {
      this.services.set(service.id, {...service, waiting: service.waiting || service.tickets || []});
    }
    const waiting = data.waiting;
    if (Array.isArray(waiting)) {
      for (const ticket of waiting) this.serviceOf(ticket.service_id, ticket).waiting.push(ticket);
    } else if (waiting && typeof waiting === "object") {
      for (const [sid, list] of Object.entries(waiting)) this.serviceOf(Number(sid)).waiting = list;
    }
    for (const ticket of data.now_serving || data.current || data.serving || []) {
      if (ticket.room) this.current.set(ticket.room.id, ticket);
    }
    this.recent = [...(data.recent_calls || data.last_calls || data.recent || data.calls || [])];
    for (const ticket of this.recent) {
      if (ticket.room && !this.current.has(ticket.room.id) && ACTIVE_IN_ROOM.has(ticket.status)) this.current.set(ticket.room.id, ticket);
    }
    if (!this.recent.length) {
      this.recent = [...this.current.values()].sort((a, b) => String(b.called_at || "").localeCompare(String(a.called_at || "")));
    }
  }

  serviceOf(id, ticket = null) {
    if (!this.services.has(id)) {
      this.services.set(id, {id, names: {}, name: ticket?.service_name, prefix: ticket?.service_prefix, waiting: []});
    }
    return this.services.get(id);
  }

  // Applies one event; returns the ticket to announce when it is a call.
  applyEvent(type, data) {
    if (type === "queue.room_state") {
      const room = this.rooms.get(data.room_id);
      if (room || data.room) this.rooms.set(data.room_id, {...(room || {}), ...(data.room || {}), open: Boolean(data.open)});
      return null;
    }
    if (type === "queue.changed") {
      const service = this.serviceOf(data.service_id, (data.waiting || [])[0]);
      const line = Array.isArray(data.line) ? this.expandLine(data.line) : data.waiting || [];
      if (line) service.waiting = line; else this.stale = true;
      if (Array.isArray(data.newcomer)) {  // [seconds, low, high]: a walk-in taking a number now
        service.estimated_wait_seconds = data.newcomer[0];
        service.estimated_wait_range = [data.newcomer[1], data.newcomer[2]];
      }
      return null;
    }
    const ticket = data.ticket;
    if (!ticket || !type.startsWith("ticket.")) return null;
    if (ticket.room && !this.rooms.has(ticket.room.id)) this.rooms.set(ticket.room.id, ticket.room);
    if (ticket.status !== "waiting") {  // it leaves its line; the places behind it close up (as the hub counts them)
      for (const service of this.services.values()) {
        if (!service.waiting.some((t) => t.id === ticket.id)) continue;
        service.waiting = service.waiting.filter((t) => t.id !== ticket.id).map((t, index) => ({...t, position: index + 1}));
      }
    }
    for (const [roomId, shown] of this.current) {
      if (shown.id === ticket.id && (!ticket.room || ticket.room.id !== roomId || !ACTIVE_IN_ROOM.has(ticket.status))) this.current.delete(roomId);
    }
    if (ticket.room && ACTIVE_IN_ROOM.has(ticket.status)) this.current.set(ticket.room.id, ticket);
    if (type === "ticket.called" || type === "ticket.recalled") {
      this.recent = [ticket, ...this.recent.filter((t) => t.id !== ticket.id)].slice(0, 12);
      return ticket;
    }
    this.recent = this.recent.map((t) => (t.id === ticket.id ? {...t, status: ticket.status} : t));
    return null;
  }

  // A waiting line sent as a delta (queue_display/lines.py): a ticket id is the ticket as this screen has it,
  // [id, seconds, low, high] the same with a new estimate, an object a ticket in full; positions follow the
  // order. null when the line names a ticket this screen does not have (it then asks for a snapshot).
  expandLine(entries) {
    const known = new Map();
    for (const service of this.services.values()) for (const t of service.waiting) known.set(t.id, t);
    const line = [];
    for (const [index, entry] of entries.entries()) {
      if (entry && typeof entry === "object" && !Array.isArray(entry)) { line.push(entry); continue; }
      const [id, seconds, low, high] = Array.isArray(entry) ? entry : [entry];
      const base = known.get(id);
      if (!base) return null;
      const ticket = {...base, position: index + 1};
      if (Array.isArray(entry)) {
        ticket.estimated_wait_seconds = seconds;
        ticket.estimated_wait_range = low === null || low === undefined ? null : [low, high];
      }
      line.push(ticket);
    }
    return line;
  }

  // True once after an event this screen could not apply: it needs a fresh snapshot.
  takeStale() {
    const stale = Boolean(this.stale);
    this.stale = false;
    return stale;
  }

  // The calls that still stand, newest first: a ticket put on hold, skipped, sent to another line or
  // back to one since its call is no longer "now calling".
  standingCalls() {
    return this.recent.filter((t) => !CALL_TAKEN_BACK.has(t.status));
  }

  waitingFor(serviceIds) {
    const out = [];
    for (const id of serviceIds) for (const t of this.services.get(id)?.waiting || []) out.push(t);
    return out.sort((a, b) => (a.estimated_wait_seconds ?? 1e12) - (b.estimated_wait_seconds ?? 1e12) || (a.position ?? 0) - (b.position ?? 0));
  }
}

function roomRef(room) {
  return {id: room.id, kind: room.kind, number: room.number, name: room.name, names: room.names};
}
