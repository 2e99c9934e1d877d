// Agent console: worklists, search, patient card, click-to-call with live state, outcome form, screen-pop.
import {api, el, startPage, items, fmtDate, fmtDateTime, fmtDuration, openDialog, announce, showError,
        formObject, withoutNulls, slashToFocus, phoneSpan, fmtPhone, exportLinks, clearFieldErrors} from "/static/admin/console.js";
import {setupCardTools, renderFollowups} from "/static/crm_bridge/card_tools.js";
import {setupCardMessages, showCardMessages} from "/static/messaging/card_messages.js";

const CARE = ["new", "in_treatment", "treatment_finished", "care_closed"];
const WORKLISTS = ["due_today", "overdue", "not_reached", "new"];

const $ = (id) => document.getElementById(id);
const state = {patient: null, call: null, statuses: [], worklist: "due_today", ws: null, wsRetry: 0, callTimer: null,
               pop: null, me: null};
let lang = "vi";
let t = (k) => k;

function fill(template, vars) { return template.replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? ""); }
function careLabel(code) { return code ? t("care." + code) : ""; }
function label(entry) { return entry[`label_${lang}`] || entry.label || entry.name || entry.code; }
function patientOf(data) { return (data && data.patient) || data; }
function phoneText(ph) { return fmtPhone(ph.e164 || ph.number || ph.raw || ""); }

// ---------- worklists ----------
async function loadWorklists() {
  const tabs = $("worklist-tabs");
  const results = await Promise.all(WORKLISTS.map((kind) => api(`/api/worklists/${kind}`).then(
    (data) => ({kind, list: items(data, "patients", "worklist"), total: data && (data.count ?? data.total)}),
    () => ({kind, list: [], total: null}))));
  tabs.replaceChildren();
  for (const {kind, list, total} of results) {
    const count = total ?? list.length;
    const tab = el("button", {type: "button", role: "tab", id: `tab-${kind}`, "aria-controls": "worklist-panel",
      "aria-selected": String(kind === state.worklist), tabindex: kind === state.worklist ? "0" : "-1",
      "data-kind": kind, onclick: () => { state.worklist = kind; renderWorklist(results); }},
      t(kind), el("span", {class: "count", "data-count": kind}, String(count)));
    tabs.append(tab);
  }
  tabs.onkeydown = (e) => {
    if (!["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    const all = [...tabs.querySelectorAll("[role=tab]")];
    const i = all.indexOf(document.activeElement);
    const next = all[(i + (e.key === "ArrowRight" ? 1 : all.length - 1)) % all.length];
    next.focus(); next.click();
  };
  renderWorklist(results);
}

function renderWorklist(results) {
  for (const tab of document.querySelectorAll("#worklist-tabs [role=tab]")) {
    const on = tab.dataset.kind === state.worklist;
    tab.setAttribute("aria-selected", String(on)); tab.tabIndex = on ? 0 : -1;
  }
  $("worklist-panel").setAttribute("aria-labelledby", `tab-${state.worklist}`);
  const entry = results.find((r) => r.kind === state.worklist);
  renderPatientList($("worklist"), entry ? entry.list : []);
  $("worklist-export").replaceChildren(exportLinks(`/api/worklists/${state.worklist}`));
}

function renderPatientList(target, list) {
  target.replaceChildren();
  if (!list.length) { target.append(el("li", {class: "muted"}, t("emptyList"))); return; }
  for (const raw of list) {
    const p = patientOf(raw);
    const phones = items(p.phones).map(phoneText).join(", ") || p.phone || "";
    const extra = [careLabel(p.care_status), p.callback_date ? `${t("callback")}: ${fmtDate(p.callback_date, lang)}` : ""].filter(Boolean).join(" · ");
    const referral = p.referrer_id && !p.last_contact_at ? el("span", {class: "badge referral", "data-referral": "new"}, t("referralNew")) : null;
    target.append(el("li", {class: referral ? "referral" : undefined}, el("button", {type: "button", "data-patient": p.id, onclick: () => openPatient(p.id)},
      el("strong", {}, p.full_name || `#${p.id}`), referral ? " " : null, referral, el("span", {class: "sub"}, [phones, extra].filter(Boolean).join(" — ")))));
  }
}

// ---------- search ----------
async function search(q) {
  const status = $("search-status");
  if (!q.trim()) return;
  status.textContent = t("searching");
  try {
    const data = await api(`/api/patients?q=${encodeURIComponent(q.trim())}`);
    const list = items(data, "patients");
    renderPatientList($("search-results"), list);
    status.textContent = list.length ? fill(t("found"), {n: list.length}) : t("noneFound");
  } catch (err) { status.textContent = showError(null, err); }
}

// ---------- patient card ----------
async function openPatient(id, {focus = true} = {}) {
  $("page-error").hidden = true;
  let data;
  try { data = await api(`/api/patients/${id}`); } catch (err) { showError($("page-error"), err); return; }
  const p = patientOf(data);
  state.patient = p;
  state.allowedCare = Array.isArray(data.allowed_care_statuses) ? data.allowed_care_statuses : CARE;
  history.replaceState(null, "", `#patient=${p.id}`);
  $("card-title").textContent = p.full_name;
  $("card-empty").hidden = true;
  $("card-body").hidden = false;
  const badge = $("card-status");
  badge.className = `badge ${p.care_status || ""}`;
  badge.textContent = careLabel(p.care_status);
  $("card-agent").textContent = `${t("assigned")}: ${p.assigned_agent_name || (p.assigned_agent && (p.assigned_agent.display_name || p.assigned_agent.username)) || (p.assigned_agent_id ? (state.me && p.assigned_agent_id === state.me.id ? t("you") : "#" + p.assigned_agent_id) : t("unassigned"))}`;
  $("card-treatment").href = `/treatment?patient_id=${p.id}`;
  const details = $("card-details");
  details.replaceChildren();
  const gender = p.gender ? (t(p.gender) || p.gender) : "";
  for (const [key, value] of [["dob", fmtDate(p.date_of_birth, lang)], ["gender", gender], ["address", p.address],
    ["referrer", p.referring_doctor], ["service", p.service_of_interest], ["freeNotes", typeof p.notes === "string" ? p.notes : p.free_notes]]) {
    if (value) details.append(el("dt", {}, t(key)), el("dd", {}, value));
  }
  if (p.booking_date) {
    details.append(el("dt", {}, t("bookingDate")), el("dd", {"data-booking-confirmed": String(!!p.booking_confirmed)},
      fmtDate(p.booking_date, lang) + (p.booking_confirmed ? ` · ${t("bookingConfirmed")}` : "")));
  }
  const dnc = $("do-not-call");
  dnc.checked = !!p.do_not_call;
  dnc.onchange = () => setDoNotCall(p.id, dnc);
  const phones = $("card-phones");
  phones.replaceChildren();
  // The first phone is the one reminder calls and SMS go to (a number that changed is removed here).
  items(p.phones).forEach((ph, i) => {
    const text = phoneText(ph);
    phones.append(el("li", {}, el("span", {class: "number"}, phoneSpan(ph)), ph.label ? el("span", {class: "muted"}, ph.label) : null,
      i === 0 ? el("span", {class: "muted", "data-main-phone": ""}, t("mainPhone")) : null,
      el("button", {type: "button", class: "call-button", "data-phone": ph.id, "aria-label": fill(t("callPhoneFull"), {n: text}),
        onclick: () => startCall(p, ph)}, t("callPhone")),
      el("button", {type: "button", class: "secondary", "data-remove-phone": ph.id, "aria-label": fill(t("removePhoneFull"), {n: text}),
        onclick: () => removePhone(p.id, ph)}, t("removePhone"))));
  });
  renderNotes(Array.isArray(data.notes) ? data.notes : items(data.care_notes ?? p.care_notes ?? data.timeline));
  renderFollowups(t, items(data.follow_ups));
  await Promise.all([loadCalls(p.id), loadTickets(p.id, data), showCardMessages(p.id)]);
  if (focus) $("card").focus();
}

async function removePhone(patientId, phone) {
  const n = phoneText(phone);
  if (!window.confirm(fill(t("removePhoneConfirm"), {n}))) return;
  $("page-error").hidden = true;
  try {
    await api(`/api/patients/${patientId}/phones/${phone.id}`, {method: "DELETE"});
    await openPatient(patientId, {focus: false});
    $("card-status-msg").textContent = fill(t("phoneRemoved"), {n});
  } catch (err) { showError($("page-error"), err); }
}

// The patient's do-not-call flag: reminder campaigns skip the patient (agents may still call).
async function setDoNotCall(id, box) {
  try {
    await api(`/api/patients/${id}`, {method: "PATCH", body: {do_not_call: box.checked}});
    $("card-status-msg").textContent = t(box.checked ? "doNotCallOn" : "doNotCallOff");
  } catch (err) { box.checked = !box.checked; showError($("page-error"), err); }
}

function renderNotes(notes) {
  const list = $("card-notes");
  list.replaceChildren();
  if (!notes.length) { list.append(el("li", {class: "muted"}, t("noNotes"))); return; }
  const sorted = [...notes].sort((a, b) => String(b.created_at || "").localeCompare(String(a.created_at || "")));
  for (const n of sorted) list.append(el("li", {}, noteView(n)));
}

function statusLabel(code, detail) {
  const top = state.statuses.find((s) => s.code === code);
  const sub = top && items(top.details, "children").find((d) => d.code === detail);
  return [top ? label(top) : code, sub ? label(sub) : detail].filter(Boolean).join(" / ");
}

function noteView(n) {
  const dates = [["callback", n.callback_date], ["booking", n.booking_date], ["arrival", n.arrival_date]]
    .filter(([, v]) => v).map(([k, v]) => `${t(k)}: ${fmtDate(v, lang)}`).join(" · ");
  const author = n.author_name || (state.me && n.author_id === state.me.id ? t("you") : (n.author_id ? `#${n.author_id}` : ""));
  return el("div", {class: "note"},
    el("div", {class: "when"}, [fmtDateTime(n.created_at, lang), author ? `${t("by")} ${author}` : "", n.call_id ? fill(t("callFor"), {id: n.call_id}) : ""].filter(Boolean).join(" · ")),
    el("div", {}, [statusLabel(n.customer_status, n.detail_status), n.care_status ? careLabel(n.care_status) : ""].filter(Boolean).join(" — ")),
    n.note ? el("div", {}, n.note) : null,
    dates ? el("div", {class: "muted"}, dates) : null);
}

async function loadCalls(patientId) {
  const body = $("card-calls").tBodies[0];
  body.replaceChildren();
  let calls = [];
  try { calls = items(await api(`/api/calls?patient_id=${patientId}`), "calls"); } catch { calls = []; }
  if (!calls.length) { body.append(el("tr", {}, el("td", {colspan: "6", class: "muted"}, t("noCalls")))); return; }
  for (const c of calls) {
    const outcome = c.outcome || c.note;
    const rec = c.recording_url ? el("audio", {controls: true, preload: "none", src: c.recording_url, "aria-label": t("recording")})
      : (c.recording_path ? el("span", {class: "muted"}, c.recording_path.split("/").pop()) : "");
    body.append(el("tr", {"data-call": c.id},
      el("td", {}, fmtDateTime(c.started_at || c.created_at, lang)),
      el("td", {}, t(c.direction || "outbound")),
      el("td", {class: "nowrap"}, phoneSpan(c.number || c.to_number || c.from_number || "")),
      el("td", {}, c.disposition ? t("disp." + c.disposition) : t(c.state || "")),
      el("td", {}, fmtDuration(c.billsec ?? c.duration)),
      // The recording sits under the outcome: a player in its own column squeezed the notes.
      el("td", {class: "outcome"}, outcome ? el("div", {}, [statusLabel(outcome.customer_status, outcome.detail_status), outcome.note].filter(Boolean).join(" — ")) : "",
        rec ? el("div", {class: "recording"}, rec) : "")));
  }
}

async function loadTickets(patientId, card) {
  const list = $("card-tickets");
  list.replaceChildren();
  let tickets = items(card && (card.tickets ?? (card.patient && card.patient.tickets)));
  if (!tickets.length) {
    try { tickets = items(await api(`/api/patient-tickets?patient_id=${patientId}`), "tickets"); } catch { tickets = []; }
  }
  if (!tickets.length) { list.append(el("li", {class: "muted"}, t("noTickets"))); return; }
  for (const tk of tickets) {
    list.append(el("li", {}, el("strong", {}, tk.number || `#${tk.id}`), " ",
      [tk.service_name, tk.status ? t("ts." + tk.status) : "", tk.room ? tk.room.name : "", fmtDateTime(tk.issued_at || tk.created_at, lang)].filter(Boolean).join(" · ")));
  }
}

// ---------- calls ----------
async function startCall(patient, phone) {
  $("page-error").hidden = true;
  try {
    const data = await api("/api/calls", {method: "POST", body: {patient_id: patient.id, phone_id: phone.id}});
    const call = data.call || data;
    const id = call.id ?? call.call_id;
    // the call's first events may have come over the websocket before this answer: keep the newer state
    const known = state.call && state.call.id === id ? state.call : null;
    state.call = {id, patient_id: patient.id, name: patient.full_name, number: phoneText(phone),
                  state: known ? known.state : call.state || "dialing"};
    showCall(state.call.state, known ? {} : call);
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) pollCall();
  } catch (err) { showError($("page-error"), err); }
}

function showCall(callState, data = {}) {
  const call = state.call;
  if (!call) return;
  call.state = callState;
  $("callbar").hidden = false;
  $("call-who").textContent = `${call.name || ""} ${call.number || ""}`.trim();
  const disp = data.disposition ? ` (${t("disp." + data.disposition)})` : "";
  $("call-state").textContent = t(callState) + (callState === "ended" ? disp : "");
  $("call-state").dataset.state = callState;
  $("hangup").hidden = callState === "ended";
  announce($("call-live"), `${t("call")} ${call.name || call.number}: ${t(callState)}${callState === "ended" ? disp : ""}`);
  clearInterval(state.callTimer);
  if (callState === "answered") {
    const since = data.answered_at ? new Date(data.answered_at).getTime() : Date.now();
    const tick = () => { $("call-timer").textContent = fmtDuration((Date.now() - since) / 1000); };
    tick(); state.callTimer = setInterval(tick, 1000);
  } else if (callState !== "ended") { $("call-timer").textContent = ""; }
  if (callState === "ended" && !call.outcomeOpened) {
    call.outcomeOpened = true;
    if (state.patient && state.patient.id === call.patient_id) loadCalls(call.patient_id);
    // A call the service could not link to a patient (an unknown caller whose card was created during
    // the call) gets its outcome as a plain care note on the new card.
    if (call.patient_id) openOutcome({callId: call.unlinked ? null : call.id, patientId: call.patient_id, name: call.name,
                                      disposition: data.disposition});
    loadUnlogged();  // a form dismissed without saving leaves the call on the to-log list
  }
}

// A call of this agent's that the page is not following yet (an inbound call they answered, a call the
// page was reloaded during, or one placed from another tab) becomes the current call.
function adoptCall(data) {
  const popped = state.pop && state.pop.patient;
  const onCard = state.patient && data.patient_id && state.patient.id === data.patient_id ? state.patient : null;
  state.call = {id: data.call_id ?? data.id, patient_id: data.patient_id || (popped ? popped.id : state.popPatientId) || null,
                unlinked: !data.patient_id, name: (onCard && onCard.full_name) || (popped && popped.full_name) || "",
                number: fmtPhone(data.number || ""), state: data.state};
}

// An adopted call's patient: their card opens and names the call bar.
async function nameCall(call) {
  if (!call.patient_id || call.name) return;
  if (!state.patient || state.patient.id !== call.patient_id) await openPatient(call.patient_id, {focus: false});
  if (state.patient && state.patient.id === call.patient_id) call.name = state.patient.full_name;
  if (call === state.call) $("call-who").textContent = `${call.name || ""} ${call.number || ""}`.trim();
}

function onCallUpdated(data) {
  const id = data.call_id ?? data.id;
  if (!state.call || state.call.id !== id) {
    if (data.state !== "ended" && (!state.call || state.call.state === "ended")) {
      adoptCall(data);
      nameCall(state.call);
    } else return;
  }
  if (data.patient_id && (!state.call.patient_id || state.call.unlinked)) { state.call.patient_id = data.patient_id; state.call.unlinked = false; }
  else if (state.call.unlinked && state.call.patient_id) linkCall(state.call.patient_id);
  showCall(data.state, data);
}

// An unknown caller's card made or picked during the call: the call log links the call to it.
async function linkCall(patientId) {
  const call = state.call;
  if (!call || !call.unlinked || !call.id || call.linking) return;
  call.linking = true;
  try {
    await api(`/api/calls/${call.id}/patient`, {method: "POST", body: {patient_id: patientId}});
    call.patient_id = patientId; call.unlinked = false;
  } catch { /* the call stays unlinked; the outcome is then noted on the card only */ }
  call.linking = false;
}

async function pollCall() {
  const call = state.call;
  while (call === state.call && call.state !== "ended" && (!state.ws || state.ws.readyState !== WebSocket.OPEN)) {
    await new Promise((r) => setTimeout(r, 1500));
    try {
      const data = await api(`/api/calls/${call.id}`);
      const c = data.call || data;
      if (c.state && c.state !== call.state) showCall(c.state, c);
    } catch { /* keep trying while the call lasts */ }
  }
}

// The server dropped events this socket could not take in time ({"type": "resync"}): read the call again.
async function resyncCall() {
  const call = state.call;
  if (!call || call.state === "ended") return;
  try {
    const data = await api(`/api/calls/${call.id}`);
    const c = data.call || data;
    if (call === state.call && c.state && c.state !== call.state) showCall(c.state, c);
  } catch { /* the next event or the poll after a reconnect brings it */ }
}

async function hangup() {
  if (!state.call) return;
  try { await api(`/api/calls/${state.call.id}/hangup`, {method: "POST", body: {}}); } catch (err) { showError($("page-error"), err); }
}

// The page (re)opened while one of the agent's calls is still on: the call bar follows it again (hang up,
// the outcome form when it ends), on the card of the patient on the line.
async function restoreCall() {
  let calls = [];
  try { calls = items(await api("/api/calls?live=1"), "calls"); } catch { return; }
  const live = calls.find((c) => c.state !== "ended" && state.me && c.agent_id === state.me.id);
  if (!live || (state.call && state.call.state !== "ended")) return;  // none, or its events came in meanwhile
  adoptCall(live);
  showCall(live.state, live);
  await nameCall(state.call);
}

// ---------- calls still to log ----------
// The agent's ended calls of the last day with no outcome (the page was reloaded or closed, the form dismissed):
// each opens the outcome form. After a reload, a call that ended minutes ago opens it at once.
async function loadUnlogged({openRecent = false} = {}) {
  let calls = [];
  try { calls = items(await api("/api/calls?unlogged=1"), "calls"); } catch { return; }
  $("unlogged").replaceChildren(...calls.map((c) => el("li", {}, el("button", {type: "button", "data-call": c.id, onclick: () => logCall(c)},
    el("strong", {}, c.patient_name || fmtPhone(c.number || "")),
    el("span", {class: "sub"}, [fmtDateTime(c.ended_at || c.created_at, lang), c.disposition ? t("disp." + c.disposition) : ""].filter(Boolean).join(" · "))))));
  $("unlogged-panel").hidden = !calls.length;
  const recent = calls[0];
  const endedAgo = recent ? Date.now() - new Date(recent.ended_at || recent.created_at).getTime() : Infinity;
  if (openRecent && endedAgo < 10 * 60 * 1000 && !$("outcome-dialog").open) logCall(recent);
}

function logCall(c) {
  openOutcome({callId: c.id, patientId: c.patient_id, name: c.patient_name, disposition: c.disposition});
}

// ---------- outcome form ----------
async function loadStatuses() {
  for (const path of ["/api/customer-statuses"]) {
    try {
      const data = await api(path);
      const list = items(data, "customer_statuses", "statuses", "status_lists");
      if (list.length) { state.statuses = list.map(normaliseStatus); return; }
    } catch { /* try the next name */ }
  }
  state.statuses = [];
}

function normaliseStatus(s) {
  // crm_bridge identifies statuses by their label (the clinic writes them in its own language).
  return {...s, code: s.code ?? s.label, details: items(s.details ?? s.children).map((d) => (
    typeof d === "string" ? {code: d, label: d} : {...d, code: d.code ?? d.label}))};
}

function fillOutcomeSelects(patientId) {
  const care = $("o-care");
  // The open card knows which care transitions are allowed; for another patient the API decides.
  const onCard = state.patient && state.patient.id === Number(patientId);
  const allowed = onCard ? (state.allowedCare || CARE).filter((c) => c !== state.patient.care_status) : CARE;
  care.replaceChildren(el("option", {value: ""}, t("keepCare")), ...allowed.map((c) => el("option", {value: c}, careLabel(c))));
  const top = $("o-customer");
  top.replaceChildren(el("option", {value: ""}, t("choose")), ...state.statuses.map((s) => el("option", {value: s.code}, label(s))));
  top.onchange = fillDetails;
  fillDetails();
}

// What the call's result implies: busy, no answer or unreachable -> the "not reached" status, with the
// detail named like the result when the clinic's list has one.
function preselect(disposition) {
  if (!disposition || disposition === "answered") return;
  const top = state.statuses.find((s) => s.not_reached);
  if (!top) return;
  $("o-customer").value = top.code;
  fillDetails();
  const word = t("disp." + disposition).toLowerCase();
  const detail = items(top.details).find((d) => label(d).toLowerCase().includes(word) || word.includes(label(d).toLowerCase()));
  if (detail) $("o-detail").value = detail.code;
}

function callbackRequired() {
  const top = state.statuses.find((s) => s.code === $("o-customer").value);
  return !!(top && top.callback_required);
}

function fillDetails() {
  const needed = callbackRequired();
  const callback = $("o-callback");
  callback.required = needed;
  callback.setAttribute("aria-required", String(needed));
  const top = state.statuses.find((s) => s.code === $("o-customer").value);
  const details = top ? items(top.details) : [];
  $("o-detail").replaceChildren(el("option", {value: ""}, t("choose")), ...details.map((d) => el("option", {value: d.code}, label(d))));
  $("o-detail").disabled = !details.length;
}

function openOutcome({callId = null, patientId, name, disposition = null}) {
  const form = $("outcome-form");
  form.reset();
  clearFieldErrors(form);
  fillOutcomeSelects(patientId);
  preselect(disposition);
  form.dataset.callId = callId ?? "";
  form.dataset.patientId = patientId ?? "";
  $("outcome-error").hidden = true;
  $("outcome-context").textContent = [name, callId ? fill(t("callFor"), {id: callId}) : t("noCall")].filter(Boolean).join(" · ");
  openDialog($("outcome-dialog"), $("o-customer"));
}

async function saveOutcome(e) {
  e.preventDefault();
  const form = $("outcome-form");
  const body = withoutNulls(formObject(form));
  const {callId, patientId} = form.dataset;
  clearFieldErrors(form);
  $("outcome-error").hidden = true;
  if (callbackRequired() && !body.callback_date) {
    showError($("outcome-error"), {problem: {code: "callback_date_required", errors: [{field: "callback_date", code: "callback_date_required"}]}}, form);
    $("o-callback").focus();
    return;
  }
  try {
    if (callId) await api(`/api/calls/${callId}/outcome`, {method: "POST", body});
    else await api(`/api/patients/${patientId}/notes`, {method: "POST", body});
    $("outcome-dialog").close();
    announce($("call-live"), t("saved"));
    if (state.call && String(state.call.id) === callId) $("callbar").hidden = true;
    if (patientId) await openPatient(Number(patientId), {focus: false});
    loadWorklists();
    loadUnlogged();
  } catch (err) { showError($("outcome-error"), err, form); }
}

// ---------- inbound screen-pop and new patients ----------
function onScreenpop(data) {
  state.pop = data;
  state.popPatientId = null;
  const dialog = $("pop-dialog");
  $("pop-number").textContent = data.number || "";
  $("pop-known").hidden = !data.known || !data.patient;
  $("pop-new").hidden = !!(data.known && data.patient);
  $("pop-error").hidden = true;
  $("pop-open").hidden = !!data.other_agents_patient;
  if (data.other_agents_patient) {  // another agent's patient: the masked name only, no card
    $("pop-name").textContent = data.masked_name || "";
    $("pop-status").className = "badge";
    $("pop-status").textContent = "";
    openDialog(dialog, dialog.querySelector("[data-close]"));
  } else if (data.known && data.patient) {
    $("pop-name").textContent = data.patient.full_name;
    $("pop-status").className = `badge ${data.patient.care_status || ""}`;
    $("pop-status").textContent = careLabel(data.patient.care_status);
    openPatient(data.patient.id, {focus: false});
    openDialog(dialog, $("pop-open"));
  } else {
    $("pop-new").reset();
    $("np-phone").value = data.number || "";
    openDialog(dialog, $("np-name"));
  }
  dialog.classList.add("pop-ringing");
  announce($("call-live"), `${t("incoming")}: ${data.masked_name || (data.patient && data.patient.full_name) || data.number || ""}`);
}

function newPatientBody(fullName, phone, dob) {
  const body = {full_name: fullName.trim()};
  if (phone && phone.trim()) body.phones = [{number: phone.trim()}];
  if (dob) body.date_of_birth = dob;
  return body;
}

async function createPatient(form, errorBox, dialog) {
  const v = formObject(form);
  try {
    const data = await api("/api/patients", {method: "POST", body: newPatientBody(v.full_name || "", v.number || "", v.date_of_birth)});
    const p = patientOf(data);
    if (dialog.id === "pop-dialog") {
      state.popPatientId = p.id;
      if (state.call && !state.call.patient_id) { state.call.patient_id = p.id; state.call.name = p.full_name; state.call.unlinked = true; }
      await linkCall(p.id);
    }
    dialog.close();
    announce($("call-live"), t("created"));
    await openPatient(p.id);
  } catch (err) { showError(errorBox, err, form); }
}

// ---------- websocket ----------
// Lists changed elsewhere (a referral, an assignment, a transfer): read them again, once for a burst.
function reloadWorklistsSoon() {
  clearTimeout(state.worklistTimer);
  state.worklistTimer = setTimeout(loadWorklists, 300);
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/agent`);
  state.ws = ws;
  ws.onopen = () => {
    if (state.wsRetry > 0) reloadWorklistsSoon();  // what changed while the socket was down
    state.wsRetry = 0; $("ws-state").textContent = t("wsOk"); document.body.dataset.ws = "open";
  };
  ws.onmessage = (m) => {
    let msg; try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.type === "call.updated") onCallUpdated(msg.data || {});
    else if (msg.type === "call.screenpop") onScreenpop(msg.data || {});
    else if (msg.type === "worklists.changed") reloadWorklistsSoon();
    else if (msg.type === "resync") { resyncCall(); reloadWorklistsSoon(); }
  };
  ws.onclose = () => {
    document.body.dataset.ws = "closed";
    $("ws-state").textContent = t("wsDown");
    const delay = Math.min(15000, 500 * 2 ** state.wsRetry++);
    setTimeout(connect, delay);
    if (state.call && state.call.state !== "ended") pollCall();
  };
}

// ---------- start ----------
// With the built-in demo PBX (no Asterisk configured), a newcomer can play an inbound call here.
async function setupDemo() {
  const health = await fetch("/healthz").then((r) => r.json()).catch(() => null);
  if (!health || !health.checks || !health.checks.asterisk || !health.checks.asterisk.demo) return;
  $("demo-panel").hidden = false;
  $("demo-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const number = $("demo-number").value.trim();
    $("demo-error").hidden = true;
    $("demo-status").textContent = "";
    clearFieldErrors($("demo-form"));
    try {
      await api("/api/demo/inbound", {method: "POST", body: {number}});
      $("demo-status").textContent = fill(t("demoSent"), {number});
    } catch (err) { showError($("demo-error"), err, $("demo-form")); }
  });
}

async function main() {
  const page = await startPage("/static/crm_bridge/i18n/agent.json");
  lang = page.lang; t = page.t; state.me = page.me;
  document.title = `${t("title")} · clinicall`;
  for (const d of document.querySelectorAll("dialog")) {
    for (const b of d.querySelectorAll("[data-close]")) b.addEventListener("click", () => d.close());
    d.addEventListener("close", () => d.classList.remove("pop-ringing"));
  }
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search($("search").value); });
  slashToFocus($("search"));
  $("hangup").addEventListener("click", hangup);
  $("add-note").addEventListener("click", () => state.patient && openOutcome({patientId: state.patient.id, name: state.patient.full_name}));
  $("outcome-form").addEventListener("submit", saveOutcome);
  setupCardTools({t, patient: () => state.patient, reload: () => openPatient(state.patient.id, {focus: false})});
  await setupCardMessages(lang);
  $("pop-open").addEventListener("click", () => { $("pop-dialog").close(); if (state.pop && state.pop.patient) openPatient(state.pop.patient.id); });
  $("pop-new").addEventListener("submit", (e) => { e.preventDefault(); createPatient($("pop-new"), $("pop-error"), $("pop-dialog")); });
  $("new-patient").addEventListener("click", () => { $("new-form").reset(); $("new-error").hidden = true; openDialog($("new-dialog"), $("nf-name")); });
  $("new-form").addEventListener("submit", (e) => { e.preventDefault(); createPatient($("new-form"), $("new-error"), $("new-dialog")); });
  connect();
  await Promise.all([loadStatuses(), loadWorklists(), setupDemo()]);
  const m = location.hash.match(/patient=(\d+)/);
  if (m) await openPatient(Number(m[1]), {focus: false});
  await restoreCall();
  await loadUnlogged({openRecent: !state.call});
  document.body.dataset.ready = "1";
}

main().catch((err) => showError($("page-error"), err));
