// Care lists (/care/<section>): the unassigned list (take or assign), transfer requests (approve, reject),
// follow-up plans in 7-day and 1-month views, every agent's calls, duplicate review and merge, HIS import.
import {api, el, startPage, items, fmtDate, fmtDateTime, fmtDuration, phoneSpan, showError, clearFieldErrors,
        exportLinks, today} from "/static/admin/console.js";

const SECTIONS = {unassigned: ["agent", "supervisor"], transfers: ["agent", "supervisor"], "follow-ups": ["agent", "supervisor"],
                  calls: ["supervisor"], duplicates: ["supervisor"], import: ["supervisor"]};
const $ = (id) => document.getElementById(id);
let t = (k) => k;
let me = null;
let agents = [];

const isSupervisor = () => me.roles.includes("supervisor") || me.roles.includes("admin");
const allowed = (section) => SECTIONS[section].some((r) => me.roles.includes(r)) || me.roles.includes("admin");
const agentName = (id) => { const a = agents.find((x) => x.id === id); return a ? a.name : (id ? `#${id}` : t("nobody")); };
const fill = (s, vars) => s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
function done(key) { const s = $("page-status"); s.textContent = ""; setTimeout(() => { s.textContent = t(key); }, 30); }

function table(headers, rows, attrs = {}) {
  if (!rows.length) return el("p", {class: "muted"}, t("noRows"));
  return el("div", {class: "table-wrap"}, el("table", attrs, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {scope: "col"}, t(h))))),
    el("tbody", {}, ...rows.map(({cells, attrs: rowAttrs}) => el("tr", rowAttrs || {}, ...cells.map((c) => el("td", {}, c ?? "")))))));
}

function agentSelect(id, labelKey, value = "") {
  return el("div", {}, el("label", {for: id}, t(labelKey)), el("select", {id, name: "agent_id"},
    el("option", {value: ""}, t("allAgents")), ...agents.map((a) => el("option", {value: a.id, selected: String(a.id) === String(value)}, a.name))));
}

const phones = (p) => el("span", {}, ...items(p.phones).flatMap((ph, i) => (i ? [", ", phoneSpan(ph)] : [phoneSpan(ph)])));
const patientLink = (id, name) => el("a", {href: `/agent#patient=${id}`}, name || `#${id}`);

// ---------- unassigned ----------
async function unassignedSection(box) {
  const path = "/api/patients?unassigned=true&limit=200";
  const data = await api(path);
  const list = items(data);
  const act = (p) => {
    if (!isSupervisor()) {
      return el("button", {type: "button", class: "small", "data-take": p.id, "aria-label": `${t("take")} ${p.full_name}`,
        onclick: () => assign(p.id, me.id)}, t("take"));
    }
    const id = `assign-${p.id}`;
    return el("span", {class: "toolbar"}, el("label", {for: id, class: "visually-hidden"}, `${t("assignTo")} ${p.full_name}`),
      el("select", {id, "data-assign": p.id}, el("option", {value: ""}, t("choose")), ...agents.map((a) => el("option", {value: a.id}, a.name))),
      el("button", {type: "button", class: "small", onclick: () => assign(p.id, Number($(id).value))}, t("assign")));
  };
  box.append(el("p", {class: "toolbar"}, el("span", {}, fill(t("count"), {n: data.count ?? list.length})), exportLinks(path)),
    table(["fullName", "phones", "careStatus", "callbackDate", ""], list.map((p) => ({attrs: {"data-patient": p.id},
      cells: [patientLink(p.id, p.full_name), phones(p), t("care." + p.care_status), fmtDate(p.callback_date), act(p)]}))));
}

async function assign(patientId, agentId) {
  if (!agentId) return;
  try { await api(`/api/patients/${patientId}/assign`, {method: "POST", body: {agent_id: agentId}}); done("assigned"); await render(); }
  catch (err) {
    if (err.problem && err.problem.code === "already_assigned") await render();  // the list as it stands now
    showError($("page-error"), err);
  }
}

// ---------- transfers ----------
async function transfersSection(box) {
  const status = new URLSearchParams(location.search).get("status") || "pending";
  const path = `/api/transfers?status=${status}`;
  const list = items(await api(path));
  const tabs = el("p", {class: "toolbar"}, ...["pending", "approved", "rejected"].map((s) => el("a", {href: `?status=${s}`,
    class: "button secondary small", "aria-current": s === status ? "page" : false}, t("tstatus." + s))), exportLinks(path));
  const decide = (tr) => (tr.status !== "pending" || !isSupervisor() ? t("tstatus." + tr.status) : el("span", {class: "toolbar"},
    el("button", {type: "button", class: "small", "data-approve": tr.id, onclick: () => decideTransfer(tr.id, "approve")}, t("approve")),
    el("button", {type: "button", class: "small secondary", "data-reject": tr.id, onclick: () => decideTransfer(tr.id, "reject")}, t("reject"))));
  box.append(tabs, table(["created", "patient", "fromAgent", "toAgent", "reason", ""], list.map((tr) => ({attrs: {"data-transfer": tr.id},
    cells: [fmtDateTime(tr.created_at), patientLink(tr.patient_id), agentName(tr.from_agent_id), agentName(tr.to_agent_id), tr.reason, decide(tr)]}))));
}

async function decideTransfer(id, decision) {
  try { await api(`/api/transfers/${id}/${decision}`, {method: "POST", body: {}}); done(decision === "approve" ? "approved" : "rejected"); await render(); }
  catch (err) { showError($("page-error"), err); }
}

// ---------- follow-ups ----------
async function followupsSection(box) {
  const q = new URLSearchParams(location.search);
  const view = q.get("view") === "month" ? "month" : "week";
  const from = q.get("from") || today();
  const agent = q.get("agent_id") || "";
  const path = `/api/follow-ups?view=${view}&from=${from}${agent ? `&agent_id=${agent}` : ""}`;
  const data = await api(path);
  const form = el("form", {class: "panel toolbar", role: "search"},
    el("div", {}, el("label", {for: "fu-view"}, t("view")), el("select", {id: "fu-view", name: "view"},
      el("option", {value: "week", selected: view === "week"}, t("week")), el("option", {value: "month", selected: view === "month"}, t("month")))),
    el("div", {}, el("label", {for: "fu-from"}, t("from")), el("input", {id: "fu-from", name: "from", type: "date", value: from})),
    isSupervisor() ? agentSelect("fu-agent", "agent", agent) : null,
    el("div", {}, el("button", {type: "submit"}, t("show"))));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams({view: form.querySelector("[name=view]").value, from: form.querySelector("[name=from]").value || today()});
    const chosen = form.querySelector("[name=agent_id]");
    if (chosen && chosen.value) p.set("agent_id", chosen.value);
    history.pushState(null, "", `?${p}`);
    render();
  });
  box.append(form);
  const list = items(data);
  const mark = (f) => (f.status === "done" ? t("fstatus.done") : el("button", {type: "button", class: "small secondary", "data-done": f.id,
    onclick: async () => {
      try { await api(`/api/follow-ups/${f.id}`, {method: "PATCH", body: {status: "done"}}); done("saved"); await render(); }
      catch (err) { showError($("page-error"), err); }
    }}, t("markDone")));
  box.append(el("p", {class: "toolbar"}, el("strong", {}, `${fmtDate(data.from)} – ${fmtDate(data.to)}`),
    el("span", {}, fill(t("count"), {n: list.length})), exportLinks(path)),
  table(["dueDate", "patient", "method", "theme", "agent", "status", ""], list.map((f) => ({attrs: {"data-followup": f.id},
    cells: [fmtDate(f.due_date), patientLink(f.patient_id, f.patient_name), t("method." + f.method), f.theme, agentName(f.agent_id),
      t("fstatus." + f.status), mark(f)]}))));
}

// ---------- calls across agents ----------
async function callsSection(box) {
  const agent = new URLSearchParams(location.search).get("agent_id") || "";
  const path = agent ? `/api/calls?agent_id=${agent}` : "/api/calls?all=1";
  const calls = items(await api(path), "calls");
  const form = el("form", {class: "panel toolbar", role: "search"}, agentSelect("calls-agent", "agent", agent),
    el("div", {}, el("button", {type: "submit"}, t("show"))));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const chosen = form.querySelector("[name=agent_id]").value;
    history.pushState(null, "", chosen ? `?agent_id=${chosen}` : "?");
    render();
  });
  box.append(form);
  box.append(el("p", {class: "toolbar"}, el("span", {}, fill(t("count"), {n: calls.length})), exportLinks(path)),
    table(["when", "agent", "direction", "number", "patient", "result", "duration", "outcome"], calls.map((c) => ({attrs: {"data-call": c.id},
      cells: [fmtDateTime(c.started_at), c.agent_id || c.origin === "click_to_call" ? agentName(c.agent_id) : t("automatedCall"),
        t("dir." + c.direction), phoneSpan(c.number || ""), c.patient_id ? patientLink(c.patient_id, c.patient_name) : "", c.disposition ? t("disp." + c.disposition) : t("state." + c.state),
        fmtDuration(c.billsec), c.outcome ? [c.outcome.customer_status, c.outcome.detail_status, c.outcome.note].filter(Boolean).join(" — ") : ""]}))));
}

// ---------- duplicates ----------
async function duplicatesSection(box) {
  const groups = items(await api("/api/duplicates"), "groups");
  if (!groups.length) { box.append(el("p", {class: "muted"}, t("noDuplicates"))); return; }
  groups.forEach((g, gi) => {
    const name = `keep-${gi}`;
    const rows = g.patients.map((p, i) => ({attrs: {"data-patient": p.id}, cells: [
      el("input", {type: "radio", name, value: p.id, id: `${name}-${p.id}`, checked: i === 0, "aria-label": `${t("keep")} ${p.full_name} #${p.id}`}),
      patientLink(p.id, p.full_name), phones(p), fmtDate(p.date_of_birth), agentName(p.assigned_agent_id), fmtDate(p.created_at)]}));
    const merge = el("button", {type: "button", "data-merge": gi, onclick: async () => {
      const keep = Number(box.querySelector(`input[name=${name}]:checked`).value);
      try {
        for (const p of g.patients.filter((x) => x.id !== keep)) await api("/api/merges", {method: "POST", body: {from_id: p.id, into_id: keep}});
        done("merged"); await render();
      } catch (err) { showError($("page-error"), err); }
    }}, t("merge"));
    box.append(el("section", {class: "panel", "data-group": gi}, el("h2", {}, t("reason." + g.reason), ": ", g.reason === "same_phone" ? phoneSpan(g.key) : g.key),
      el("p", {class: "hint"}, t("mergeHint")),
      table(["keep", "fullName", "phones", "dob", "agent", "created"], rows), el("div", {class: "actions"}, merge)));
  });
}

// ---------- HIS import ----------
function importSection(box) {
  // The browser's own file button speaks the browser's language: a translated button opens the same chooser.
  const chosen = el("span", {id: "import-chosen", class: "muted"}, t("noFile"));
  const input = el("input", {id: "import-file", name: "file", type: "file", accept: ".csv,text/csv", class: "file-input",
    "aria-describedby": "import-chosen", onchange: () => { chosen.textContent = input.files.length ? input.files[0].name : t("noFile"); }});
  const form = el("form", {class: "panel", id: "import-form"},
    el("p", {}, el("strong", {}, t("csvFile"))),
    el("p", {class: "toolbar"}, input, el("label", {for: "import-file", class: "button secondary"}, t("chooseFile")), chosen),
    el("p", {class: "hint"}, t("importHint")),
    el("div", {class: "actions"}, el("button", {type: "submit"}, t("import"))));
  const progress = el("progress", {id: "import-progress", max: "100", value: "0", hidden: true, "aria-label": t("progress")});
  const result = el("div", {id: "import-result", "aria-live": "polite"});
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    $("page-error").hidden = true;
    const file = $("import-file").files[0];
    if (!file) return;
    upload(file, progress, result);
  });
  box.append(form, progress, result);
}

// XMLHttpRequest, not fetch: it reports upload progress.
function upload(file, progress, result) {
  const body = new FormData();
  body.append("file", file);
  const xhr = new XMLHttpRequest();
  progress.hidden = false; progress.value = 0;
  result.replaceChildren(el("p", {class: "muted"}, t("uploading")));
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 90); };
  xhr.onload = () => {
    progress.value = 100;
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch { data = null; }
    if (xhr.status >= 400 || !data) { result.replaceChildren(); showError($("page-error"), {problem: data || {}, status: xhr.status}); return; }
    result.replaceChildren(el("p", {class: "ok", "data-summary": "1"}, fill(t("importDone"), data)),
      data.errors.length ? el("h2", {}, t("rowErrors")) : null,
      table(["line", "column", "problem"], data.errors.map((r) => ({attrs: {"data-line": r.line, title: r.reason},
        cells: [String(r.line), r.field || "", t("row." + (r.code || "row_invalid"))]}))));
  };
  xhr.onerror = () => { result.replaceChildren(); showError($("page-error"), new Error("network")); };
  xhr.open("POST", "/api/imports/patients");
  xhr.setRequestHeader("Accept", "application/json");
  xhr.send(body);
}

const RENDER = {unassigned: unassignedSection, transfers: transfersSection, "follow-ups": followupsSection, calls: callsSection,
  duplicates: duplicatesSection, import: importSection};
const section = () => { const s = location.pathname.split("/")[2] || "unassigned"; return s in SECTIONS ? s : "unassigned"; };

async function render() {
  $("page-error").hidden = true;
  const next = el("div", {});
  try { await RENDER[section()](next); } catch (err) { showError($("page-error"), err); }
  $("section").replaceChildren(next);
  document.body.dataset.ready = "1";
}

// The unassigned list and the transfer requests follow other users' changes (`worklists.changed` on
// /ws/agent). A list the user is working in (a select open, a field focused) is read again when they leave it.
const LIVE = ["unassigned", "transfers"];
let liveTimer = null;

function refreshSoon() {
  if (!LIVE.includes(section())) return;
  clearTimeout(liveTimer);
  liveTimer = setTimeout(() => {
    if ($("section").contains(document.activeElement) && document.activeElement.matches("select, input, textarea")) {
      document.activeElement.addEventListener("blur", refreshSoon, {once: true});
      return;
    }
    render();
  }, 300);
}

function follow(retry = 0) {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/agent`);
  ws.onopen = () => { if (retry > 0) refreshSoon(); retry = 0; document.body.dataset.ws = "open"; };
  ws.onmessage = (m) => {
    let msg; try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.type === "worklists.changed" || msg.type === "resync") refreshSoon();
  };
  ws.onclose = () => { document.body.dataset.ws = "closed"; setTimeout(() => follow(retry + 1), Math.min(15000, 500 * 2 ** retry)); };
}

async function main() {
  const page = await startPage("/static/crm_bridge/i18n/care.json");
  t = page.t; me = page.me;
  agents = items(await api("/api/agents").catch(() => []));
  const current = section();
  document.title = `${t("s." + current)} · ${t("title")} · clinicall`;
  $("section-title").textContent = t("s." + current);
  $("care-nav").replaceChildren(...Object.keys(SECTIONS).filter(allowed).map((s) => el("li", {},
    el("a", {href: `/care/${s}`, "aria-current": s === current ? "page" : false}, t("s." + s)))));
  window.addEventListener("popstate", render);
  await render();
  follow();
}

main().catch((err) => showError($("page-error"), err));
