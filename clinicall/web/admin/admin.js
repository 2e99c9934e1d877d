// Admin console: users and roles, services and rooms, display tokens, message templates, status lists,
// the audit trail and statistics with charts. One page; the section comes from the URL (/admin/<section>).
import {api, el, startPage, items, fmtDateTime, fmtDuration, openDialog, showError, clearFieldErrors, exportLinks} from "/static/admin/console.js";
import {barChart} from "/static/admin/charts.js";
import {referrersSection, accountsSection, referralStats} from "/static/crm_bridge/care_admin.js";

const SECTIONS = ["users", "services", "rooms", "display-tokens", "templates", "statuses", "audit", "stats", "referrers", "patient-accounts"];
const ROLES = ["admin", "supervisor", "agent", "reception", "doctor", "referrer"];
const ROOM_KINDS = ["consult", "counter", "lab", "imaging"];
const $ = (id) => document.getElementById(id);
let lang = "vi";
let t = (k) => k;

function fill(s, vars) { return s.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? ""); }
function saved() { const s = $("page-status"); s.textContent = ""; setTimeout(() => { s.textContent = t("saved"); }, 30); }
function names(obj) { const n = obj.names || {}; return n[lang] || n.vi || obj.name || ""; }

// ---------- generic form fields ----------
let fieldCounter = 0;
function field(spec) {
  const id = `f-${spec.name}-${++fieldCounter}`;
  const wrap = el("div", {class: "field"});
  if (spec.type === "checks") {
    const set = el("fieldset", {class: "checks"}, el("legend", {}, t(spec.label || spec.name)));
    for (const o of spec.options) {
      const cid = `${id}-${o.value}`;
      set.append(el("label", {for: cid}, el("input", {type: "checkbox", id: cid, name: spec.name, value: o.value,
        checked: (spec.value || []).map(String).includes(String(o.value))}), o.label));
    }
    wrap.append(set);
    return wrap;
  }
  if (spec.type === "checkbox") {
    wrap.append(el("label", {for: id, class: "checks"}, el("input", {type: "checkbox", id, name: spec.name, checked: !!spec.value}), " ", t(spec.label || spec.name)));
    return wrap;
  }
  wrap.append(el("label", {for: id}, t(spec.label || spec.name)));
  let input;
  if (spec.type === "select") {
    input = el("select", {id, name: spec.name, required: spec.required}, ...spec.options.map((o) => el("option", {value: o.value, selected: String(o.value) === String(spec.value ?? "")}, o.label)));
  } else if (spec.type === "textarea") {
    input = el("textarea", {id, name: spec.name, rows: "4", required: spec.required}, spec.value ?? "");
  } else {
    input = el("input", {id, name: spec.name, type: spec.type || "text", required: spec.required, value: spec.value ?? "",
      autocomplete: spec.type === "password" ? "new-password" : "off", min: spec.min, max: spec.max});
  }
  wrap.append(input);
  if (spec.hint) { const hid = `${id}-hint`; input.setAttribute("aria-describedby", hid); wrap.append(el("p", {class: "hint", id: hid}, t(spec.hint))); }
  return wrap;
}

function readFields(form, specs) {
  const out = {};
  for (const spec of specs) {
    if (spec.type === "checks") {
      out[spec.name] = [...form.querySelectorAll(`input[name="${spec.name}"]:checked`)].map((i) => spec.numeric ? Number(i.value) : i.value);
    } else if (spec.type === "checkbox") {
      out[spec.name] = form.querySelector(`[name="${spec.name}"]`).checked;
    } else {
      const v = form.querySelector(`[name="${spec.name}"]`).value.trim();
      if (v === "" && spec.optional) continue;
      out[spec.name] = spec.type === "number" ? Number(v) : v;
    }
  }
  return out;
}

// Required fields left empty are named under their field in the page's language (the forms are
// `novalidate`: the browser's own pop-ups speak the browser's language, not the page's).
function missingFields(form, specs) {
  const missing = specs.filter((spec) => spec.required && !["checks", "checkbox"].includes(spec.type)
    && form.querySelector(`[name="${spec.name}"]`).value.trim() === "");
  if (!missing.length) return null;
  return {problem: {code: "invalid_input", errors: missing.map((spec) => ({field: spec.name, code: "missing"}))}};
}

function createForm(titleKey, specs, submit) {
  const error = el("p", {class: "error", role: "alert", hidden: true});
  const form = el("form", {class: "panel", novalidate: true}, el("h2", {}, t(titleKey)), error, ...specs.map(field),
    el("div", {class: "actions"}, el("button", {type: "submit"}, t("add"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    clearFieldErrors(form);
    const missing = missingFields(form, specs);
    if (missing) { showError(error, missing, form); return; }
    try { await submit(readFields(form, specs), form); form.reset(); saved(); } catch (err) { showError(error, err, form); }
  });
  return form;
}

function editDialog(title, specs, submit) {
  const dialog = $("edit-dialog");
  const form = $("edit-form");
  $("edit-title").textContent = title;
  $("edit-error").hidden = true;
  $("edit-fields").replaceChildren(...specs.map(field));
  form.noValidate = true;
  form.onsubmit = async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const missing = missingFields(form, specs);
    if (missing) { showError($("edit-error"), missing, form); return; }
    try { await submit(readFields(form, specs)); dialog.close(); saved(); } catch (err) { showError($("edit-error"), err, form); }
  };
  openDialog(dialog);
}

function table(headers, rows) {
  if (!rows.length) return el("p", {class: "muted"}, t("noRows"));
  return el("div", {class: "table-wrap"}, el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {scope: "col"}, t(h))))),
    el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c ?? "")))))));
}

// ---------- sections ----------
async function usersSection(box) {
  const users = items(await api("/api/users"), "users");
  const roleOptions = ROLES.map((r) => ({value: r, label: t("role." + r)}));
  box.append(table(["username", "display_name", "roles", "extension", "active", ""], users.map((u) => [
    u.username, u.display_name, u.roles.map((r) => t("role." + r)).join(", "), u.extension || "", u.active ? t("yes") : t("no"),
    el("span", {}, el("button", {type: "button", class: "secondary small", "aria-label": `${t("edit")} ${u.username}`, onclick: () => editDialog(`${t("edit")} ${u.username}`, [
      {name: "display_name", value: u.display_name}, {name: "extension", value: u.extension || "", optional: true},
      {name: "roles", type: "checks", options: roleOptions, value: u.roles}, {name: "password", type: "password", optional: true}],
    async (v) => { await api(`/api/users/${u.id}`, {method: "PATCH", body: v}); render(); })}, t("edit")), " ",
    el("button", {type: "button", class: "secondary small", onclick: async () => {
      try { await api(`/api/users/${u.id}`, {method: "PATCH", body: {active: !u.active}}); saved(); render(); } catch (err) { showError($("page-error"), err); }
    }}, u.active ? t("deactivate") : t("activate")))])));
  box.append(createForm("addUser", [{name: "username", required: true}, {name: "display_name"}, {name: "password", type: "password", required: true},
    {name: "roles", type: "checks", options: roleOptions, value: ["agent"]}, {name: "extension", optional: true, hint: "extensionHint"}],
  async (v) => { if (!v.extension) delete v.extension; await api("/api/users", {method: "POST", body: v}); render(); }));
}

async function servicesSection(box) {
  const services = items(await api("/api/services"), "services");
  const specsFor = (s = {}) => [{name: "name_vi", value: (s.names || {}).vi ?? s.name ?? "", required: true},
    {name: "name_en", value: (s.names || {}).en ?? "", optional: true}, {name: "name_zh", value: (s.names || {}).zh ?? "", optional: true},
    {name: "prefix", value: s.prefix ?? "", required: true}];
  const toBody = (v) => ({prefix: v.prefix.toUpperCase(),
    names: Object.fromEntries(["vi", "en", "zh"].filter((l) => v[`name_${l}`]).map((l) => [l, v[`name_${l}`]]))});
  box.append(table(["prefix", "name", "active", ""], services.map((s) => [s.prefix, names(s), s.active === false ? t("no") : t("yes"),
    el("button", {type: "button", class: "secondary small", "aria-label": `${t("edit")} ${names(s)}`, onclick: () => editDialog(`${t("edit")} ${names(s)}`,
      [...specsFor(s), {name: "active", type: "checkbox", value: s.active !== false}],
      async (v) => { await api(`/api/services/${s.id}`, {method: "PATCH", body: {...toBody(v), active: v.active}}); render(); })}, t("edit"))])));
  box.append(createForm("addService", specsFor(), async (v) => { await api("/api/services", {method: "POST", body: toBody(v)}); render(); }));
}

async function roomsSection(box) {
  const [rooms, services] = await Promise.all([api("/api/rooms").then((d) => items(d, "rooms")), api("/api/services").then((d) => items(d, "services"))]);
  const serviceOptions = services.map((s) => ({value: s.id, label: `${s.prefix} · ${names(s)}`}));
  const specsFor = (r = {}) => [
    {name: "kind", type: "select", value: r.kind || "consult", options: ROOM_KINDS.map((k) => ({value: k, label: t("kind." + k)}))},
    {name: "number", type: "number", value: r.number ?? "", required: true, min: 1},
    {name: "name_vi", value: (r.names || {}).vi ?? "", optional: true}, {name: "name_en", value: (r.names || {}).en ?? "", optional: true},
    {name: "name_zh", value: (r.names || {}).zh ?? "", optional: true},
    {name: "service_ids", type: "checks", numeric: true, options: serviceOptions, value: r.service_ids || []},
    {name: "doctor_name", value: r.doctor_name ?? "", optional: true}, {name: "open", type: "checkbox", value: r.open ?? true}];
  const toBody = (v) => {
    const body = {kind: v.kind, number: v.number, service_ids: v.service_ids, open: v.open};
    if (v.doctor_name !== undefined) body.doctor_name = v.doctor_name;
    const n = Object.fromEntries(["vi", "en", "zh"].filter((l) => v[`name_${l}`]).map((l) => [l, v[`name_${l}`]]));
    if (Object.keys(n).length) body.names = n;
    return body;
  };
  box.append(table(["number", "kind", "name", "service_ids", "doctor_name", "open", ""], rooms.map((r) => [String(r.number), t("kind." + r.kind), names(r),
    (r.service_ids || []).map((id) => (serviceOptions.find((o) => o.value === id) || {label: id}).label).join(", "), r.doctor_name || "",
    r.open ? t("yes") : t("no"),
    el("button", {type: "button", class: "secondary small", "aria-label": `${t("edit")} ${names(r) || r.number}`, onclick: () => editDialog(`${t("edit")} ${names(r) || r.number}`, specsFor(r),
      async (v) => { await api(`/api/rooms/${r.id}`, {method: "PATCH", body: toBody(v)}); render(); })}, t("edit")), " ",
    el("button", {type: "button", class: "danger small", "aria-label": `${t("deleteRoom")} ${names(r) || r.number}`, onclick: async () => {
      if (!window.confirm(`${t("deleteRoomConfirm")} ${names(r) || r.number}`)) return;
      try { await api(`/api/rooms/${r.id}`, {method: "DELETE"}); saved(); render(); } catch (err) { showError($("page-error"), err); }
    }}, t("deleteRoom"))])));
  box.append(createForm("addRoom", specsFor(), async (v) => { await api("/api/rooms", {method: "POST", body: toBody(v)}); render(); }));
}

async function tokensSection(box) {
  const [tokens, rooms, services] = await Promise.all([api("/api/display-tokens").then((d) => items(d, "display_tokens")),
    api("/api/rooms").then((d) => items(d, "rooms"), () => []), api("/api/services").then((d) => items(d, "services"), () => [])]);
  const secret = el("div", {id: "token-once", role: "status"});
  box.append(secret);
  box.append(table(["name", "room_ids", "service_ids", "created_at", ""], tokens.map((tk) => [tk.name,
    tk.room_ids.length ? tk.room_ids.join(", ") : t("all"), tk.service_ids.length ? tk.service_ids.join(", ") : t("all"), fmtDateTime(tk.created_at, lang),
    tk.revoked ? t("revoked") : el("button", {type: "button", class: "danger small", "aria-label": `${t("revoke")} ${tk.name}`, onclick: async () => {
      await api(`/api/display-tokens/${tk.id}`, {method: "DELETE"}); saved(); render(); }}, t("revoke"))])));
  box.append(createForm("newToken", [{name: "name", required: true},
    {name: "room_ids", type: "checks", numeric: true, options: rooms.map((r) => ({value: r.id, label: names(r) || String(r.number)}))},
    {name: "service_ids", type: "checks", numeric: true, options: services.map((s) => ({value: s.id, label: names(s)}))}],
  async (v) => {
    const made = await api("/api/display-tokens", {method: "POST", body: v});
    await render();
    $("token-once").replaceChildren(el("div", {class: "panel"}, el("p", {}, t("tokenOnce")),
      el("p", {class: "secret", id: "tv-url"}, el("a", {href: made.tv_url}, made.tv_url))));
  }));
}

// The crm room's paths for templates and status lists.
const TEMPLATES_PATH = "/api/templates";
const STATUSES_PATH = "/api/customer-statuses";

async function templatesSection(box) {
  const data = await api(TEMPLATES_PATH);
  const list = items(data, "templates");
  const hint = (data.placeholders || []).map((p) => `{${p}}`).join(", ");
  const specsFor = (tp = {}) => [{name: "name", value: tp.name ?? "", required: true},
    {name: "body", type: "textarea", value: tp.body ?? "", required: true, hint: hint ? `${t("placeholdersAre")} ${hint}` : "placeholders"}];
  box.append(table(["name", "body", ""], list.map((tp) => [tp.name, tp.body,
    el("button", {type: "button", class: "secondary small", "aria-label": `${t("edit")} ${tp.name}`, onclick: () => editDialog(`${t("edit")} ${tp.name}`, specsFor(tp),
      async (v) => { await api(`${TEMPLATES_PATH}/${tp.id}`, {method: "PATCH", body: v}); render(); })}, t("edit"))])));
  box.append(createForm("addTemplate", specsFor(), async (v) => { await api(TEMPLATES_PATH, {method: "POST", body: v}); render(); }));
}

async function statusesSection(box) {
  const list = items(await api(`${STATUSES_PATH}?all=1`), "statuses");
  const toggle = (s) => el("button", {type: "button", class: "secondary small", "aria-label": `${s.active ? t("deactivate") : t("activate")} ${s.label}`,
    onclick: async () => { try { await api(`${STATUSES_PATH}/${s.id}`, {method: "PATCH", body: {active: !s.active}}); saved(); render(); } catch (err) { showError($("page-error"), err); } }},
  s.active ? t("deactivate") : t("activate"));
  const rename = (s) => el("button", {type: "button", class: "secondary small", "aria-label": `${t("edit")} ${s.label}`,
    onclick: () => editDialog(`${t("edit")} ${s.label}`, [{name: "label", value: s.label, required: true}, {name: "not_reached", type: "checkbox", value: s.not_reached},
      ...(s.parent_id ? [] : [{name: "callback_required", type: "checkbox", value: s.callback_required}])],
      async (v) => { await api(`${STATUSES_PATH}/${s.id}`, {method: "PATCH", body: v}); render(); })}, t("edit"));
  for (const s of list) {
    const details = items(s.details);
    box.append(el("section", {class: "panel", "data-status": s.label},
      el("h2", {}, s.label, s.active ? "" : ` (${t("inactive")})`, s.callback_required ? ` · ${t("callback_required")}` : ""), el("p", {}, rename(s), " ", toggle(s)),
      table(["detailStatus", "not_reached", "active", ""], details.map((d) => [d.label, d.not_reached ? t("yes") : t("no"),
        d.active ? t("yes") : t("no"), el("span", {}, rename(d), " ", toggle(d))]))));
  }
  const parents = list.map((s) => ({value: s.id, label: s.label}));
  box.append(createForm("addStatus", [{name: "parent_id", label: "parent", type: "select", options: [{value: "", label: t("topLevel")}, ...parents], optional: true},
    {name: "label", required: true}, {name: "not_reached", type: "checkbox", value: false}, {name: "callback_required", type: "checkbox", value: false}],
  async (v) => { if (v.parent_id) { v.parent_id = Number(v.parent_id); delete v.callback_required; } await api(STATUSES_PATH, {method: "POST", body: v}); render(); }));
}

async function auditSection(box) {
  const users = await api("/api/users").then((d) => items(d, "users"), () => []);
  const userName = (id) => { const u = users.find((x) => x.id === id); return u ? (u.display_name || u.username) : (id ?? ""); };
  const specs = [{name: "user_id", label: "user", type: "select", options: [{value: "", label: t("all")}, ...users.map((u) => ({value: u.id, label: u.username}))], optional: true},
    {name: "patient_id", type: "number", optional: true, min: 1}, {name: "action", optional: true},
    {name: "from", type: "date", optional: true}, {name: "to", type: "date", optional: true}];
  const results = el("div", {id: "audit-results"});
  const form = el("form", {class: "panel row", role: "search"}, ...specs.map(field), el("div", {style: "align-self:end"}, el("button", {type: "submit"}, t("filter"))));
  const run = async () => {
    const q = new URLSearchParams(Object.entries(readFields(form, specs)).filter(([, v]) => v !== "" && !Number.isNaN(v)));
    try {
      const rows = items(await api(`/api/audit?${q}`), "audit", "entries", "events");
      results.replaceChildren(el("p", {}, exportLinks(`/api/audit?${q}`)), table(["when", "user", "patient_id", "action", "detail"], rows.map((r) => [fmtDateTime(r.at || r.created_at, lang),
        r.user_name || r.username || userName(r.user_id), String(r.patient_id ?? ""), r.action, r.detail || ""])));
    } catch (err) { results.replaceChildren(el("p", {class: "error"}, showError(null, err))); }
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  box.append(form, results);
  await run();
}

async function statsSection(box) {
  // The first view asks without dates: the server answers for the last 14 days of the clinic's own zone.
  const specs = [{name: "from", type: "date", optional: true}, {name: "to", type: "date", optional: true}];
  const form = el("form", {class: "panel row"}, ...specs.map(field), el("div", {style: "align-self:end"}, el("button", {type: "submit"}, t("show"))));
  const out = el("div", {id: "charts"});
  box.append(form, out);
  const run = async () => {
    let {from, to} = readFields(form, specs);
    const get = (path, q) => api(q ? `${path}?${q}` : path).catch((err) => ({error: showError(null, err)}));
    let calls = null;
    if (!from || !to) {
      calls = await get("/api/stats/calls", "");
      if (calls.from && calls.to) ({from, to} = calls);
    }
    const q = from && to ? `from=${from}&to=${to}` : "";
    if (q) { form.querySelector("[name=from]").value = from; form.querySelector("[name=to]").value = to; }
    const [callData, queue, bookings, referrals] = await Promise.all([calls ? calls : get("/api/stats/calls", q),
      get("/api/stats/queue", q), get("/api/stats/bookings", q), get("/api/stats/referrals", q)]);
    out.replaceChildren(...callCharts(callData), ...queueCharts(queue), ...roomTable(queue), ...bookingCharts(bookings),
      ...referralStats(referrals, q, careUi()),
      el("section", {class: "panel", id: "stats-exports"}, el("h2", {}, t("exports")),
        el("p", {}, t("calls"), " ", exportLinks(`/api/stats/calls?${q}`)), el("p", {}, t("queueStats"), " ", exportLinks(`/api/stats/queue?${q}`))));
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  await run();
}

function unavailable(title, data) { return [el("section", {class: "panel"}, el("h2", {}, title), el("p", {class: "muted"}, fill(t("statsUnavailable"), {detail: data.error})))]; }

function callCharts(data) {
  if (data.error) return unavailable(t("calls"), data);
  const days = data.days.map((d) => d.day);
  // calls with no agent are the automated ones (reminder and turn-near calls)
  const agents = data.agents.map((a) => (a.agent_id == null ? {...a, agent_name: t("automatedCalls")} : a));
  const perAgentDay = agents.map((a) => ({name: a.agent_name, values: days.map((day) => {
    const row = data.per_agent_day.find((r) => r.day === day && r.agent_id === a.agent_id); return row ? row.calls : 0; })}));
  const disp = Object.entries(data.dispositions);
  const outcomes = data.outcomes || [];
  return [
    el("section", {class: "panel"}, barChart({title: t("callsPerAgentDay"), labels: days.map((d) => d.slice(5)), series: perAgentDay, stacked: true,
      description: `${data.total} ${t("calls")}, ${data.answered} ${t("answered")}`})),
    el("section", {class: "panel"}, barChart({title: t("outcomes"), labels: disp.map(([k]) => t("disp." + k)), series: [{name: t("calls"), values: disp.map(([, v]) => v)}]}),
      outcomes.length ? barChart({title: `${t("outcomes")} (${t("detail")})`, labels: outcomes.map((o) => [o.customer_status, o.detail_status].filter(Boolean).join(" / ") || "—"),
        series: [{name: t("calls"), values: outcomes.map((o) => o.count)}]}) : ""),
    el("section", {class: "panel"}, barChart({title: t("answerRate"), labels: agents.map((a) => a.agent_name), unit: "%",
      series: [{name: t("rate"), values: agents.map((a) => Math.round((a.answer_rate || 0) * 100))}]})),
  ];
}

function queueCharts(data) {
  if (data.error) return unavailable(t("waits"), data);
  const rows = items(data, "by_service");
  const label = (r) => [r.service_prefix, r.service_name].filter(Boolean).join(" · ") || String(r.service_id);
  const wait = (r) => r.mean_wait_seconds ?? 0;
  const noShow = (r) => r.noshow_rate ?? 0;
  return [
    el("section", {class: "panel"}, barChart({title: t("waits"), labels: rows.map(label), series: [{name: t("avgWait"), values: rows.map((r) => Math.round(wait(r) / 6) / 10)}]})),
    el("section", {class: "panel"}, barChart({title: t("noShows"), labels: rows.map(label), unit: "%", series: [{name: t("noShowRate"), values: rows.map((r) => Math.round(noShow(r) * 1000) / 10)}]})),
  ];
}

// Per room: visits, waits and service times (start to done), the same figures as the export's "by room" sheet.
function roomTable(data) {
  if (data.error) return [];
  const min = (s) => (s === null || s === undefined ? "—" : fmtDuration(s));
  return [el("section", {class: "panel", id: "room-stats"}, el("h2", {}, t("roomStats")),
    table(["room", "visits", "served", "noShowRate", "avgWait", "medianWait", "avgService", "medianService"], items(data, "by_room").map((r) => [
      r.room_name || `#${r.room_id}`, String(r.visits), String(r.served), r.noshow_rate === null ? "—" : `${Math.round(r.noshow_rate * 1000) / 10}%`,
      min(r.mean_wait_seconds), min(r.median_wait_seconds), min(r.mean_service_seconds), min(r.median_service_seconds)])))];
}

function bookingCharts(data) {
  if (data.error) return unavailable(t("conversion"), data);
  const days = data.days || [];
  return [el("section", {class: "panel"}, barChart({title: `${t("conversion")}: ${data.arrived}/${data.booked} (${Math.round((data.conversion || 0) * 100)}%)`,
    description: `${t("arrivedLate")}: ${data.arrived_late}; ${t("pending")}: ${data.pending}`,
    labels: days.map((d) => d.day.slice(5)), series: [{name: t("booked"), values: days.map((d) => d.booked - d.pending)},
      {name: t("arrived"), values: days.map((d) => d.arrived)}, {name: t("arrivedLate"), values: days.map((d) => d.arrived_late)}]}))];
}

const careUi = () => ({t, table, createForm, render, saved, lang, $});
const RENDER = {users: usersSection, services: servicesSection, rooms: roomsSection, "display-tokens": tokensSection, templates: templatesSection,
  statuses: statusesSection, audit: auditSection, stats: statsSection, referrers: (box) => referrersSection(box, careUi()),
  "patient-accounts": (box) => accountsSection(box, careUi())};
const section = () => { const s = location.pathname.split("/")[2] || "users"; return SECTIONS.includes(s) ? s : "users"; };

async function render() {
  const box = $("section");
  $("page-error").hidden = true;
  const next = el("div", {});
  try { await RENDER[section()](next); } catch (err) { showError($("page-error"), err); }
  box.replaceChildren(next);
}

async function main() {
  const page = await startPage("/static/admin/i18n/admin.json");
  lang = page.lang; t = page.t;
  const adminUser = page.me.roles.includes("admin");
  const visible = SECTIONS.filter((s) => adminUser || s === "stats");
  const current = adminUser ? section() : "stats";
  document.title = `${t(current)} · ${t("title")} · clinicall`;
  $("section-title").textContent = t(current);
  $("admin-nav").replaceChildren(...visible.map((s) => el("li", {}, el("a", {href: `/admin/${s}`, "aria-current": s === current ? "page" : false}, t(s)))));
  for (const b of document.querySelectorAll("dialog [data-close]")) b.addEventListener("click", () => b.closest("dialog").close());
  await render();
  document.body.dataset.ready = "1";
  void fmtDuration;
}

main().catch((err) => showError($("page-error"), err));
