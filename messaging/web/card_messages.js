// The patient card's messages: send the chosen template as an SMS in one click, and the patient's
// messages with their status, live (/ws/messages). Loaded by the agent console (crm_bridge/web/agent.js).
import {api, el, items, fmtDateTime, fmtPhone, showError} from "/static/admin/console.js";

const $ = (id) => document.getElementById(id);
const state = {patientId: null, ws: null, messages: new Map(), t: (k) => k};

async function dictionary(lang) {
  const [common, own] = await Promise.all(["/static/admin/i18n/common.json", "/static/messaging/i18n/messaging.json"]
    .map((url) => fetch(url, {credentials: "same-origin"}).then((r) => r.json())));
  const words = {...common.en, ...own.en, ...common[lang], ...own[lang]};
  return (k) => words[k] ?? k;
}

function statusText(m) {
  const t = state.t;
  if (m.status === "queued" && m.waiting_for) return `${t("mstatus.queued")} · ${t("noGateway")}`;
  if (m.status === "queued" && m.attempts > 0) return `${t("mstatus.queued")} · ${t("retrying")} (${m.attempts})`;
  return t("mstatus." + m.status);
}

function render() {
  const t = state.t;
  const list = $("card-messages");
  list.replaceChildren();
  const all = [...state.messages.values()].sort((a, b) => b.id - a.id);
  if (!all.length) { list.append(el("li", {class: "muted"}, t("noMessages"))); return; }
  for (const m of all) {
    list.append(el("li", {"data-message": m.id, "data-status": m.status},
      el("strong", {class: `badge msg-${m.status}`}, statusText(m)), " ", el("span", {class: "muted"}, fmtDateTime(m.created_at)),
      m.to_e164 ? el("span", {class: "muted", title: m.to_e164}, ` → ${fmtPhone(m.to_e164)}`) : null, " · ", m.text, m.status === "failed" && m.gateway_reply ? el("span", {class: "muted"}, ` (${m.gateway_reply})`) : null));
  }
}

function listen(patientId) {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/messages?patient_id=${patientId}`);
  ws.onmessage = (e) => {
    const event = JSON.parse(e.data);
    if (event.type === "message.updated" && state.patientId === patientId) { state.messages.set(event.data.id, event.data); render(); }
  };
  // 4403: the patient is no longer this user's to see (moved to another agent): no reconnect
  ws.onclose = (e) => { if (e.code !== 4403 && state.patientId === patientId) setTimeout(() => state.patientId === patientId && listen(patientId), 2000); };
  state.ws = ws;
}

// Called whenever the card shows a patient.
export async function showCardMessages(patientId) {
  state.patientId = patientId;
  state.messages = new Map();
  listen(patientId);
  try {
    // a live update that arrived while the list loaded is newer: keep it
    for (const m of items(await api(`/api/patients/${patientId}/messages`))) if (!state.messages.has(m.id)) state.messages.set(m.id, m);
  } catch (err) { showError($("template-error"), err); }
  render();
}

export async function setupCardMessages(lang) {
  state.t = await dictionary(lang);
  const t = state.t;
  $("messages-title").textContent = t("messages");
  $("tpl-send").textContent = t("sendSms");
  $("tpl-send").addEventListener("click", async () => {
    const templateId = Number($("tpl-select").value);
    $("template-error").hidden = true;
    if (!templateId || !state.patientId) return;
    try {
      const {message} = await api(`/api/patients/${state.patientId}/messages`, {method: "POST", body: {template_id: templateId}});
      if (!state.messages.has(message.id)) state.messages.set(message.id, message);  // live updates may be ahead
      render();
      $("tpl-status").textContent = t("smsQueued");
    } catch (err) { showError($("template-error"), err); }
  });
}
