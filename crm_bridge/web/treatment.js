// Treatment and results of one patient (/treatment?patient_id=ID): progress entries with their visibility
// switches and re-visit dates, result files in two groups, the visits, the reminder text to copy and the
// patient's account. Without a patient: today's expected patients to pick from.
import {api, el, startPage, items, fmtDate, fmtDateTime, showError, clearFieldErrors, today} from "/static/admin/console.js";

const $ = (id) => document.getElementById(id);
let t = (k) => k;
const patientId = Number(new URLSearchParams(location.search).get("patient_id")) || null;
let nextRevisit = null;

function status(text) { const s = $("page-status"); s.textContent = ""; setTimeout(() => { s.textContent = text; }, 30); }

// Multipart uploads (the JSON helper cannot send files); a refusal carries the problem like api() does.
async function upload(path, formData) {
  const response = await fetch(path, {method: "POST", body: formData, credentials: "same-origin", headers: {Accept: "application/json"}});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { const err = new Error(data.detail || response.statusText); err.problem = data; err.status = response.status; throw err; }
  return data;
}

function toggle(label, checked, onchange) {
  return el("label", {class: "checks"}, el("input", {type: "checkbox", checked, "aria-label": label, onchange}));
}

async function showArrivals() {
  $("pick").hidden = false;
  const data = await api(`/api/arrivals?date=${today()}`);
  const list = $("arrivals");
  list.replaceChildren(...items(data).map((p) => el("li", {}, el("a", {href: `/treatment?patient_id=${p.id}`}, p.full_name))));
  if (!list.children.length) list.append(el("li", {class: "muted"}, t("noPatients")));
}

async function load() {
  const data = await api(`/api/patients/${patientId}/care`);
  const p = data.patient;
  $("patient").hidden = false;
  $("patient-name").textContent = p.full_name;
  document.title = `${p.full_name} · ${t("title")} · clinicall`;
  $("patient-status").className = `badge ${p.care_status}`;
  $("patient-status").textContent = t("care." + p.care_status);
  $("patient-referrer").textContent = data.referrer ? `${t("referredBy")}: ${data.referrer.name}` : "";
  renderAccount(data.account, null);
  $("visits").replaceChildren(...data.visits.map((v) => el("li", {"data-visit": v.visit},
    el("strong", {}, v.visit ? `${t("revisitN")} ${v.visit}` : t("firstVisit")), `: ${fmtDate(v.date)}`)));
  nextRevisit = data.next_revisit ? data.next_revisit.date : null;
  $("revisit").hidden = !data.revisit_message;
  $("revisit-message").value = data.revisit_message || "";
  $("entries").tBodies[0].replaceChildren(...data.entries.map((e) => el("tr", {"data-entry": e.id},
    el("td", {}, fmtDate(e.day)), el("td", {}, e.doctor), el("td", {}, e.technician), el("td", {}, e.progress), el("td", {}, e.orders),
    el("td", {}, e.revisit_date ? fmtDate(e.revisit_date) : ""),
    el("td", {}, toggle(t("forPatient"), e.visible_to_patient, (ev) => patchEntry(e.id, {visible_to_patient: ev.target.checked}))),
    el("td", {}, toggle(t("forReferrer"), e.visible_to_referrer, (ev) => patchEntry(e.id, {visible_to_referrer: ev.target.checked}))))));
  $("files").replaceChildren(...data.files.map((f) => el("li", {"data-file": f.id},
    el("a", {href: f.url, download: f.filename}, f.filename), ` · ${t("group." + f.group)} · ${fmtDateTime(f.created_at)} `,
    f.group === "referral" ? el("span", {class: "muted"}, t("sentByReferrer")) : el("span", {},
      el("label", {class: "checks"}, el("input", {type: "checkbox", checked: f.visible_to_patient, "data-vis": "patient",
        onchange: (ev) => patchFile(f.id, {visible_to_patient: ev.target.checked})}), " ", t("forPatient")), " ",
      el("label", {class: "checks"}, el("input", {type: "checkbox", checked: f.visible_to_referrer, "data-vis": "referrer",
        onchange: (ev) => patchFile(f.id, {visible_to_referrer: ev.target.checked})}), " ", t("forReferrer"))))));
  document.body.dataset.ready = "1";
}

function renderAccount(account, created) {
  $("account-panel").hidden = !account && !created;
  if (account) $("account-state").textContent = `${t("login")}: ${account.username} · ${account.active ? t("active") : t("disabled")}`
    + (account.must_change_password ? ` · ${t("mustChange")}` : "");
  if (created) {
    $("account-new").hidden = false;
    $("account-message").value = created.message;
    $("account-state").textContent = `${t("login")}: ${created.username} · ${t("oneTimePassword")}: ${created.one_time_password}`;
  }
}

async function patchEntry(id, body) {
  try { await api(`/api/treatment/${id}`, {method: "PATCH", body}); status(t("saved")); } catch (err) { showError($("page-error"), err); }
}

async function patchFile(id, body) {
  try { await api(`/api/files/${id}`, {method: "PATCH", body}); status(t("saved")); } catch (err) { showError($("page-error"), err); }
}

function wireForms() {
  $("entry-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    clearFieldErrors(form);
    $("entry-error").hidden = true;
    const body = {day: form.elements.day.value, doctor: form.elements.doctor.value, technician: form.elements.technician.value,
      progress: form.elements.progress.value, orders: form.elements.orders.value,
      visible_to_patient: $("e-vp").checked, visible_to_referrer: $("e-vr").checked};
    if (form.elements.revisit_date.value) body.revisit_date = form.elements.revisit_date.value;
    try {
      const result = await api(`/api/patients/${patientId}/treatment`, {method: "POST", body});
      form.reset();
      await load();
      if (result.account) renderAccount(null, result.account);
      status(t("saved"));
    } catch (err) { showError($("entry-error"), err, form); }
  });
  $("file-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    clearFieldErrors(form);
    $("file-error").hidden = true;
    const data = new FormData();
    data.append("group", form.elements.group.value);
    data.append("visible_to_patient", String($("f-vp").checked));
    data.append("visible_to_referrer", String($("f-vr").checked));
    for (const file of $("f-files").files) data.append("files", file, file.name);
    try { await upload(`/api/patients/${patientId}/files`, data); form.reset(); await load(); status(t("uploaded")); }
    catch (err) { showError($("file-error"), err, form); }
  });
  for (const button of document.querySelectorAll("[data-send]")) {
    button.addEventListener("click", () => sendText(button));
  }
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const box = $(button.dataset.copy);
      box.select();
      try { await navigator.clipboard.writeText(box.value); } catch { document.execCommand("copy"); }
      status(t("copied"));
    });
  }
}

// The prepared text goes out through the messaging room (the patient's first phone); a re-visit's
// reminder is scheduled for 08:00 clinic time the day before.
async function sendText(button) {
  const body = {text: $(button.dataset.send).value};
  if (button.dataset.dayBefore && nextRevisit) {
    const day = new Date(`${nextRevisit}T12:00:00Z`);
    day.setUTCDate(day.getUTCDate() - 1);
    body.send_on = day.toISOString().slice(0, 10);
  }
  try {
    await api(`/api/patients/${patientId}/messages`, {method: "POST", body});
    status(body.send_on ? `${t("smsScheduled")} ${fmtDate(body.send_on)}` : t("smsQueued"));
  } catch (err) { showError($("page-error"), err); }
}

async function main() {
  const page = await startPage("/static/crm_bridge/i18n/treatment.json");
  t = page.t;
  wireForms();
  if (patientId) await load(); else { await showArrivals(); document.body.dataset.ready = "1"; }
}

main().catch((err) => showError($("page-error"), err));
