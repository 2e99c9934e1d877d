// Reception console: expected arrivals with check-in, walk-in tickets, the live queue per service.
import {api, el, startPage, items, showError, exportLinks} from "/static/admin/console.js";

const DICT = {
  vi: {reprint: "In lại phiếu", reprintOf: "In lại phiếu số {number}", exportArrivals: "Danh sách hẹn:", exportTickets: "Số thứ tự trong ngày:", title: "Lễ tân", logout: "Đăng xuất", issuedTicket: "Số thứ tự vừa cấp", walkin: "Cấp số cho khách vãng lai", service: "Dịch vụ",
       priority: "Ưu tiên", issue: "Cấp số", queue: "Hàng đợi", arrivals: "Bệnh nhân hẹn đến", date: "Ngày",
       checkinService: "Dịch vụ khi tiếp nhận", checkinPriority: "Ưu tiên khi tiếp nhận", auto: "Tự động (có hẹn)", show: "Xem", name: "Họ tên", phone: "Điện thoại", status: "Tình trạng", ticket: "Số",
       checkin: "Tiếp nhận", checkinFor: "Tiếp nhận {name}", noArrivals: "Không có bệnh nhân hẹn đến ngày này.", arrivalsCount: "{n} bệnh nhân hẹn đến.",
       waiting: "đang chờ", empty: "Không có ai đang chờ.", wait: "Chờ khoảng", newcomer: "Lấy số bây giờ chờ", position: "Thứ tự", number: "Số", updated: "Cập nhật lúc {time}",
       minutes: "phút", "p.normal": "Thường", "p.emergency": "Cấp cứu", "p.elderly": "Người cao tuổi", "p.pregnant": "Phụ nữ mang thai",
       "p.disabled": "Người khuyết tật", "p.booked": "Có hẹn", issuedFor: "{number} — {service}", statusUrl: "Trang theo dõi", soon: "sắp tới",
       "care.new": "Mới", "care.in_treatment": "Đang điều trị", "care.treatment_finished": "Đã điều trị xong", "care.care_closed": "Ngừng chăm sóc"},
  en: {reprint: "Reprint slip", reprintOf: "Reprint the slip of {number}", exportArrivals: "Expected arrivals:", exportTickets: "The day's tickets:", title: "Reception", logout: "Log out", issuedTicket: "Ticket just issued", walkin: "Walk-in ticket", service: "Service",
       priority: "Priority", issue: "Issue ticket", queue: "Queue", arrivals: "Expected arrivals", date: "Date",
       checkinService: "Service at check-in", checkinPriority: "Priority at check-in", auto: "Automatic (booked)", show: "Show", name: "Name", phone: "Phone", status: "Status", ticket: "Ticket",
       checkin: "Check in", checkinFor: "Check in {name}", noArrivals: "No patients expected on this day.", arrivalsCount: "{n} patients expected.",
       waiting: "waiting", empty: "Nobody is waiting.", wait: "Est. wait", newcomer: "A number taken now waits", position: "Position", number: "Number", updated: "Updated at {time}",
       minutes: "min", "p.normal": "Normal", "p.emergency": "Emergency", "p.elderly": "Elderly", "p.pregnant": "Pregnant",
       "p.disabled": "Disabled", "p.booked": "Booked", issuedFor: "{number} — {service}", statusUrl: "Status page", soon: "next",
       "care.new": "New", "care.in_treatment": "In treatment", "care.treatment_finished": "Treatment finished", "care.care_closed": "Care closed"},
  zh: {reprint: "补打号码条", reprintOf: "补打 {number} 的号码条", exportArrivals: "预约名单：", exportTickets: "当日号码：", title: "前台", logout: "退出登录", issuedTicket: "刚发的号码", walkin: "为未预约患者取号", service: "服务",
       priority: "优先", issue: "取号", queue: "排队", arrivals: "预约到诊患者", date: "日期",
       checkinService: "登记时的服务", checkinPriority: "登记时的优先", auto: "自动（预约）", show: "查看", name: "姓名", phone: "电话", status: "状态", ticket: "号码",
       checkin: "登记", checkinFor: "为{name}登记", noArrivals: "这一天没有预约到诊的患者。", arrivalsCount: "预约到诊 {n} 人。",
       waiting: "人候诊", empty: "无人候诊。", wait: "预计等候", newcomer: "现在取号约等", position: "顺序", number: "号码", updated: "更新于 {time}",
       minutes: "分钟", "p.normal": "普通", "p.emergency": "急诊", "p.elderly": "老人", "p.pregnant": "孕妇",
       "p.disabled": "残障", "p.booked": "预约", issuedFor: "{number} — {service}", statusUrl: "排队进度页", soon: "即将"},
};
const LOCALES = {vi: "vi-VN", en: "en-GB", zh: "zh-CN"};
const PRIORITIES = ["normal", "elderly", "pregnant", "disabled", "emergency"];
const $ = (id) => document.getElementById(id);
let lang = "vi";
let t = (k) => k;
const state = {services: [], checkedIn: new Map()};

// "15–25 phút": the range the real wait falls in 4 times out of 5 (the estimate alone when no range is stored).
function waitRange(ticket) {
  const minutes = (seconds) => Math.max(0, Math.round(Number(seconds) / 60));
  const range = ticket.estimated_wait_range;
  if (Array.isArray(range) && range.length === 2 && range[0] !== null && range[1] !== null) {
    const low = minutes(range[0]), high = minutes(range[1]);
    if (high < 1) return t("soon");
    return low === high ? `~${high} ${t("minutes")}` : `${low}–${high} ${t("minutes")}`;
  }
  if (ticket.estimated_wait_seconds === null || ticket.estimated_wait_seconds === undefined) return "—";
  return `~${minutes(ticket.estimated_wait_seconds)} ${t("minutes")}`;
}

function fill(s, vars) { return s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? ""); }
function serviceName(s) {
  if (!s) return "";
  const names = s.names || {};
  return names[lang] || names.vi || s.name || s.service_name || `#${s.id}`;
}

async function loadServices() {
  state.services = items(await api("/api/services"), "services").filter((s) => s.active !== false);
  for (const select of [$("w-service"), $("a-service")]) {
    select.replaceChildren(...state.services.map((s) => el("option", {value: s.id}, `${s.prefix ? s.prefix + " · " : ""}${serviceName(s)}`)));
  }
  $("w-priority").replaceChildren(...PRIORITIES.map((p) => el("option", {value: p}, t("p." + p))));
  $("a-priority").replaceChildren(el("option", {value: ""}, t("auto")),
    ...PRIORITIES.filter((p) => p !== "normal").map((p) => el("option", {value: p}, t("p." + p))));
}

function showIssued(ticket) {
  const box = $("issued");
  box.hidden = false;
  $("issued-number").textContent = ticket.number;
  box.dataset.ticketId = ticket.id;  // messaging's turn-near opt-in follows it
  $("issued-detail").replaceChildren(ticket.service_name || serviceName(state.services.find((s) => s.id === ticket.service_id)),
    ticket.status_url ? el("span", {}, " · ", el("a", {href: ticket.status_url, target: "_blank", rel: "noopener"}, t("statusUrl"))) : "",
    " ", reprintButton(ticket));
}

// The slip again, same number (the patient lost theirs): a page laid out for the receipt printer.
function reprintButton(ticket) {
  return el("button", {type: "button", class: "secondary small", "data-reprint": ticket.id, "aria-label": fill(t("reprintOf"), {number: ticket.number}),
    onclick: () => window.open(`/reception/tickets/${ticket.id}/slip?lang=${lang}`, "_blank", "noopener")}, t("reprint"));
}

let arrivalsRun = 0;  // a reload started later (another desk's check-in) wins over an earlier one still loading
let dateChosen = false;  // until someone picks another day, the list follows the clinic's today (a page left open overnight)
let clinicToday = "";

async function loadArrivals() {
  // With no date chosen yet, the server answers for the clinic's own today (its time zone, not the browser's).
  const run = ++arrivalsRun;
  const day = dateChosen ? $("a-date").value : "";
  const body = $("arrivals").tBodies[0];
  const checkedIn = new Map();
  let list = [];
  try {
    const data = await api(day ? `/api/arrivals?date=${day}` : "/api/arrivals");
    if (!day && data.date && run === arrivalsRun) { $("a-date").value = data.date; clinicToday = data.date; }
    list = items(data, "arrivals", "patients");
  } catch (err) { if (run === arrivalsRun) $("arrivals-status").textContent = showError(null, err); return; }
  // Patients already checked in that day show their number, not a second check-in button.
  if (list.length) {
    const ids = list.map((raw) => (raw.patient || raw).id).slice(0, 500).join(",");
    try {
      const done = items(await api(`/api/tickets?patient_ids=${ids}&date=${$("a-date").value}`), "tickets");
      for (const tk of [...done].reverse()) checkedIn.set(tk.patient_id, tk);  // the latest wins
    } catch { /* without it the rows keep their check-in buttons */ }
  }
  if (run !== arrivalsRun) return;
  state.checkedIn = checkedIn;
  const shown = encodeURIComponent($("a-date").value);
  $("arrivals-export").replaceChildren(t("exportArrivals"), " ", exportLinks(`/api/arrivals?date=${shown}`), " · ",
    t("exportTickets"), " ", exportLinks(`/api/tickets?date=${shown}`));
  $("arrivals-status").textContent = list.length ? fill(t("arrivalsCount"), {n: list.length}) : t("noArrivals");
  body.replaceChildren(...list.map((raw) => {
    const p = raw.patient || raw;
    const phones = items(p.phones).map((ph) => ph.raw || ph.e164).join(", ");
    const cell = el("td", {});
    const done = state.checkedIn.get(p.id) || raw.ticket;
    if (done) cell.append(el("strong", {class: "ticket-number", "data-ticket": done.number}, done.number));
    else cell.append(el("button", {type: "button", "data-checkin": p.id, "aria-label": fill(t("checkinFor"), {name: p.full_name}),
      onclick: (e) => checkIn(p, e.currentTarget)}, t("checkin")));
    return el("tr", {"data-patient": p.id}, el("td", {}, p.full_name), el("td", {}, phones),
      el("td", {}, p.care_status ? t("care." + p.care_status) : ""), cell);
  }));
}

async function checkIn(patient, button) {
  $("page-error").hidden = true;
  button.disabled = true;
  try {
    const body = {patient_id: patient.id, service_id: Number($("a-service").value)};
    if ($("a-priority").value) body.priority = $("a-priority").value;
    const data = await api("/api/checkins", {method: "POST", body});
    const ticket = data.ticket || data;
    state.checkedIn.set(patient.id, ticket);
    showIssued(ticket);
    button.replaceWith(el("strong", {class: "ticket-number", "data-ticket": ticket.number}, ticket.number));
    loadQueue();
  } catch (err) { button.disabled = false; showError($("page-error"), err); }
}

async function issueWalkIn(e) {
  e.preventDefault();
  const button = $("walkin-form").querySelector("button[type=submit]");
  if (button.disabled) return;  // a double click gives one number, not two
  button.disabled = true;
  $("walkin-error").hidden = true;
  try {
    const data = await api("/api/tickets", {method: "POST", body: {service_id: Number($("w-service").value), priority: $("w-priority").value}});
    showIssued(data.ticket || data);
    loadQueue();
  } catch (err) { showError($("walkin-error"), err); } finally { button.disabled = false; }
}

function queueGroups(data) {
  // {services: [{service_id|id, name, waiting: [...]}]} or {queues: [...]} or {"<service_id>": [...]}.
  let groups = items(data, "services", "queues");
  if (!groups.length && data && typeof data === "object") {
    groups = Object.entries(data).filter(([, v]) => Array.isArray(v)).map(([k, v]) => ({service_id: Number(k), waiting: v}));
  }
  return groups.map((g) => {
    const id = g.service_id ?? g.id ?? (g.service && g.service.id);
    const service = state.services.find((s) => s.id === id) || g.service || g;
    return {id, name: serviceName(service) || g.service_name, waiting: items(g.waiting ?? g.tickets),
      newcomer: {estimated_wait_seconds: g.estimated_wait_seconds, estimated_wait_range: g.estimated_wait_range}};
  });
}

async function loadQueue() {
  let data;
  try { data = await api("/api/queue"); } catch { return; }
  const box = $("queue");
  box.replaceChildren();
  for (const g of queueGroups(data)) {
    const titleId = `q-${g.id}`;
    const table = el("table", {class: "compact", "aria-labelledby": titleId},
      el("thead", {}, el("tr", {}, el("th", {}, t("position")), el("th", {}, t("number")), el("th", {}, t("priority")), el("th", {}, t("wait")), el("th", {}, ""))),
      el("tbody", {}, g.waiting.length ? g.waiting.map((tk, i) => el("tr", {"data-ticket": tk.number},
        el("td", {}, String(tk.position ?? i + 1)), el("td", {}, el("strong", {}, tk.number)),
        el("td", {}, t("p." + (tk.priority || "normal"))), el("td", {}, waitRange(tk)), el("td", {}, reprintButton(tk))))
        : el("tr", {}, el("td", {colspan: "5", class: "muted"}, t("empty")))));
    box.append(el("section", {"data-service": g.id}, el("h3", {id: titleId}, `${g.name} — ${g.waiting.length} ${t("waiting")}`,
      el("span", {class: "muted newcomer"}, ` · ${t("newcomer")}: ${waitRange(g.newcomer)}`)), table));
  }
  $("queue-updated").textContent = fill(t("updated"), {time: new Date().toLocaleTimeString(LOCALES[lang] || "vi-VN")});
}

// Every queue change arrives on the display websocket (the user's session is enough); reload the
// queue shortly after a burst of changes, and the arrivals when any desk checked a patient in.
let reconnects = 0;
function liveQueue() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/display`);
  let timer = null;
  let arrivalsTimer = null;
  ws.onopen = () => {
    document.body.dataset.live = "1";
    if (reconnects++) { loadQueue(); loadArrivals(); }  // what other desks did while this page was offline
  };
  ws.onmessage = (m) => {
    let frame; try { frame = JSON.parse(m.data); } catch { return; }
    for (const msg of frame.type === "batch" ? frame.events || [] : [frame]) {
      if (msg.type === "queue.changed" || String(msg.type).startsWith("ticket.")) {
        clearTimeout(timer); timer = setTimeout(loadQueue, 150);
      }
      const ticket = msg.data && msg.data.ticket;
      if (msg.type === "ticket.issued" && ticket && ticket.source !== "kiosk") {
        clearTimeout(arrivalsTimer); arrivalsTimer = setTimeout(loadArrivals, 200);
      }
    }
  };
  ws.onclose = () => { document.body.dataset.live = "0"; setTimeout(liveQueue, 3000); };
}

async function main() {
  const page = await startPage(DICT);
  lang = page.lang; t = page.t;
  document.title = `${t("title")} · clinicall`;
  await loadServices();
  $("walkin-form").addEventListener("submit", issueWalkIn);
  $("arrivals-form").addEventListener("submit", (e) => { e.preventDefault(); dateChosen = $("a-date").value !== clinicToday; loadArrivals(); });
  await Promise.all([loadArrivals(), loadQueue()]);
  liveQueue();
  setInterval(loadQueue, 15000);  // a safety net; the display websocket brings every change at once
  setInterval(() => { if (!dateChosen) loadArrivals(); }, 300000);  // a new day's arrivals on a page left open
  document.body.dataset.ready = "1";
}

main().catch((err) => showError($("page-error"), err));
