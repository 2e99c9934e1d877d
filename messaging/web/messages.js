// Supervisors' messaging page: the gateway in force (read-only) and the message log with filters and exports.
import {api, el, startPage, items, fmtDateTime, fmtPhone, exportLinks, showError} from "/static/admin/console.js";

const $ = (id) => document.getElementById(id);
let t = (k) => k;

async function loadGateway() {
  const g = await api("/api/messaging/gateway");
  $("gw-adapter").textContent = t("adapter." + g.adapter);
  $("gw-health").textContent = g.configured ? `${g.health.ok ? "✓" : "✗"} ${g.health.detail}` : t("noGateway");
  const body = $("gw-settings").querySelector("tbody");
  body.replaceChildren(...Object.entries(g.settings).map(([k, v]) =>
    el("tr", {}, el("td", {}, k), el("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v)))));
}

async function loadLog() {
  const query = new URLSearchParams();
  for (const name of ["status", "origin", "from", "to"]) {
    const value = $("log-filter").elements[name].value.trim();
    if (value) query.set(name, value);
  }
  const path = `/api/messages${query.toString() ? "?" + query : ""}`;
  const data = await api(path);
  $("log-exports").replaceChildren(exportLinks(path));
  $("log-counts").textContent = Object.entries(data.counts || {}).map(([s, n]) => `${t("mstatus." + s)}: ${n}`).join(" · ");
  $("log-table").querySelector("tbody").replaceChildren(...items(data).map((m) => el("tr", {"data-message": m.id},
    el("td", {}, fmtDateTime(m.created_at)), el("td", {}, m.patient_id ? el("a", {href: `/agent#patient=${m.patient_id}`}, `#${m.patient_id}`) : ""),
    el("td", {}, fmtPhone(m.to_e164)), el("td", {}, m.text), el("td", {}, m.origin),
    el("td", {"data-status": m.status}, t("mstatus." + m.status) + (m.waiting_for ? ` · ${t("noGateway")}` : "")),
    el("td", {}, String(m.attempts)), el("td", {class: "muted"}, m.gateway_reply))));
}

async function main() {
  const page = await startPage("/static/messaging/i18n/messaging.json");
  t = page.t;
  document.title = `${t("title")} · clinicall`;
  $("log-filter").addEventListener("submit", (e) => { e.preventDefault(); loadLog().catch((err) => showError($("page-error"), err)); });
  await Promise.all([loadGateway(), loadLog()]);
  document.body.dataset.ready = "1";
}

main().catch((err) => showError($("page-error"), err));
