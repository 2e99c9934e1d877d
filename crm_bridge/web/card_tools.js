// The patient card's tools: edit the record, add a phone, copy a message template, plan a follow-up,
// hand the patient to another agent (a transfer request a supervisor approves), and the card's follow-ups.
import {api, el, items, fmtDate, openDialog, showError, clearFieldErrors, formObject} from "/static/admin/console.js";

const $ = (id) => document.getElementById(id);

export function setupCardTools({t, patient, reload}) {
  const submitWith = (formId, errorId, dialogId, send, doneKey) => {
    $(formId).addEventListener("submit", async (e) => {
      e.preventDefault();
      const form = $(formId);
      $(errorId).hidden = true;
      clearFieldErrors(form);
      try {
        await send(formObject(form));
        $(dialogId).close();
        status(t(doneKey));
        await reload();
      } catch (err) { showError($(errorId), err, form); }
    });
  };
  const status = (text) => { const s = $("card-status-msg"); s.textContent = ""; setTimeout(() => { s.textContent = text; }, 30); };
  const open = (dialogId, formId, errorId) => {
    $(formId).reset(); $(errorId).hidden = true; clearFieldErrors($(formId)); openDialog($(dialogId));
  };

  $("edit-patient").addEventListener("click", () => {
    const p = patient();
    open("patient-dialog", "patient-form", "patient-error");
    const form = $("patient-form");
    for (const name of ["full_name", "date_of_birth", "gender", "address", "referring_doctor", "service_of_interest", "notes"]) {
      form.elements[name].value = p[name] || "";
    }
  });
  submitWith("patient-form", "patient-error", "patient-dialog", (v) => {
    const body = {};
    for (const [k, value] of Object.entries(v)) if (k !== "date_of_birth" && k !== "gender") body[k] = value ?? "";
    if (!body.full_name) body.full_name = null;
    if (v.date_of_birth) body.date_of_birth = v.date_of_birth;
    if (v.gender) body.gender = v.gender;
    return api(`/api/patients/${patient().id}`, {method: "PATCH", body});
  }, "savedPatient");

  $("add-phone").addEventListener("click", () => open("phone-dialog", "phone-form", "phone-error"));
  submitWith("phone-form", "phone-error", "phone-dialog",
    (v) => api(`/api/patients/${patient().id}/phones`, {method: "POST", body: {number: v.number || "", label: v.label || ""}}), "phoneAdded");

  $("plan-followup").addEventListener("click", () => open("followup-dialog", "followup-form", "followup-error"));
  submitWith("followup-form", "followup-error", "followup-dialog",
    (v) => api(`/api/patients/${patient().id}/follow-ups`, {method: "POST", body: {method: v.method, theme: v.theme || "", due_date: v.due_date}}),
    "followupSaved");

  $("hand-over").addEventListener("click", async () => {
    open("handover-dialog", "handover-form", "handover-error");
    const agents = items(await api("/api/agents").catch(() => []));
    const me = patient().assigned_agent_id;
    $("ho-agent").replaceChildren(el("option", {value: ""}, t("choose")),
      ...agents.filter((a) => a.id !== me).map((a) => el("option", {value: a.id}, a.name)));
  });
  submitWith("handover-form", "handover-error", "handover-dialog",
    (v) => api(`/api/patients/${patient().id}/transfer-requests`, {method: "POST",
      body: {to_agent_id: Number(v.to_agent_id) || 0, reason: v.reason || ""}}), "handOverSent");

  $("open-template").addEventListener("click", async () => {
    open("template-dialog", "template-form", "template-error");
    $("tpl-text").value = ""; $("tpl-missing").textContent = ""; $("tpl-status").textContent = "";
    try {
      const list = items(await api("/api/templates"));
      $("tpl-select").replaceChildren(el("option", {value: ""}, t("choose")), ...list.map((x) => el("option", {value: x.id}, x.name)));
    } catch (err) { showError($("template-error"), err); }
  });
  $("tpl-select").addEventListener("change", async () => {
    const id = $("tpl-select").value;
    $("tpl-text").value = ""; $("tpl-missing").textContent = "";
    if (!id) return;
    try {
      const r = await api(`/api/templates/${id}/render?patient_id=${patient().id}`);
      $("tpl-text").value = r.text;
      $("tpl-missing").textContent = r.missing && r.missing.length ? `${t("templateMissing")} ${r.missing.join(", ")}` : "";
    } catch (err) { showError($("template-error"), err); }
  });
  $("tpl-copy").addEventListener("click", async () => {
    const text = $("tpl-text").value;
    if (!text) return;
    try { await navigator.clipboard.writeText(text); } catch { $("tpl-text").select(); document.execCommand("copy"); }
    $("tpl-status").textContent = t("copied");
  });
}

export function renderFollowups(t, list) {
  const target = $("card-followups");
  target.replaceChildren();
  if (!list.length) { target.append(el("li", {class: "muted"}, t("noFollowups"))); return; }
  for (const f of [...list].sort((a, b) => a.due_date.localeCompare(b.due_date))) {
    target.append(el("li", {"data-followup": f.id}, el("strong", {}, fmtDate(f.due_date)), " · ", t("method." + f.method), " · ", f.theme,
      " · ", el("span", {class: "muted"}, t("fstatus." + f.status))));
  }
}
