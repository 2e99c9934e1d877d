// Reminder campaigns (/reminders): start one now, pause or run it, its live progress, today's turn-near calls,
// the settings.
import {api, el, startPage, fmtDate, fmtPhone, showError, clearFieldErrors, exportLinks} from "/static/admin/console.js";

const $ = (id) => document.getElementById(id);
const COLUMNS = ["called", "confirmed", "callback", "not_reached", "failed", "pending", "skipped"];
let t = (k) => k;
let shown = null;  // the campaign whose patients are listed under the table

function row(c) {
  const p = c.progress;
  const toggle = c.state === "done" ? "" : el("button", {type: "button", class: "secondary small",
    "data-campaign": c.id, onclick: () => setState(c.id, c.state === "running" ? "paused" : "running")},
    t(c.state === "running" ? "pause" : "resume"));
  return el("tr", {"data-campaign": c.id, "data-state": c.state},
    el("td", {}, `#${c.id}`), el("td", {}, t("kind." + c.kind)), el("td", {}, fmtDate(c.about)),
    el("td", {class: "state"}, t("state." + c.state)),
    ...COLUMNS.map((k) => el("td", {"data-count": k}, String(p[k] ?? 0))),
    el("td", {class: "toolbar"}, toggle, el("button", {type: "button", class: "secondary small", "data-targets": c.id,
      "aria-label": t("targetsOf").replace("{id}", c.id), onclick: () => showTargets(c.id)}, t("targets"))));
}

// Who a campaign calls, on which number, and how each call ended (to follow up from the patient's card).
function targetRow(x) {
  const why = x.state === "skipped" && x.skip_reason ? `: ${t("skip." + x.skip_reason)}` : "";
  return el("tr", {"data-target": x.id, "data-patient": x.patient_id, "data-state": x.state},
    el("td", {}, el("a", {href: `/agent#patient=${x.patient_id}`}, x.patient_name || `#${x.patient_id}`)),
    el("td", {class: "nowrap"}, x.number ? el("span", {title: x.number}, fmtPhone(x.number)) : ""),
    el("td", {class: "state"}, t("target." + x.state) + why), el("td", {}, String(x.attempts)), el("td", {}, x.key || ""));
}

async function showTargets(id) {
  shown = id;
  const data = await api(`/api/reminders/campaigns/${id}`);
  if (shown !== id) return;
  $("targets-title").textContent = t("targetsOf").replace("{id}", id);
  const head = ["patient", "number", "state", "attempts", "keyPressed"];
  $("targets").replaceChildren(data.targets.length ? el("div", {class: "table-wrap"}, el("table", {id: "targets-table"},
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {scope: "col"}, t(h))))),
    el("tbody", {}, ...data.targets.map(targetRow)))) : el("p", {class: "muted"}, t("noTargets")));
  if (data.targets.length) $("targets").append(el("p", {}, exportLinks(`/api/reminders/campaigns/${id}`)));
  $("targets-box").hidden = false;
}

function draw(data) {
  const box = $("campaigns");
  const head = ["id", "kind", "about", "state", ...COLUMNS.map((k) => "count." + k), ""];
  box.replaceChildren(data.campaigns.length ? el("div", {class: "table-wrap"}, el("table", {id: "campaign-table"},
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {scope: "col"}, h ? t(h) : "")))),
    el("tbody", {}, ...data.campaigns.map(row)))) : el("p", {class: "muted"}, t("none")));
  const s = data.settings;
  const pairs = [["calling_hours", s.calling_hours.join(", ")], ["max_channels", s.max_channels],
    ["max_attempts", s.max_attempts], ["retry_minutes", s.retry_minutes], ["daily_kinds", s.daily_kinds.map((k) => t("kind." + k)).join(", ")],
    ["build_at", s.build_at], ["timezone", s.timezone], ["enabled", t(s.enabled ? "yes" : "no")]];
  $("settings").replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, t("set." + k)), el("dd", {"data-setting": k}, String(v))]));
}

function turnNearRow(c) {
  const why = c.state === "skipped" ? t("skip." + c.skip_reason) : (c.disposition ? t("disp." + c.disposition) : "");
  return el("tr", {"data-ticket": c.ticket_id, "data-state": c.state},
    el("td", {}, c.ticket_number), el("td", {}, new Date(c.updated_at).toLocaleTimeString(document.documentElement.lang)),
    el("td", {class: "state"}, [t("tn." + c.state), why].filter(Boolean).join(": ")),
    el("td", {}, c.played ? t("yes") : ""), el("td", {}, c.call_id ? `#${c.call_id}` : ""));
}

function drawTurnNear(data) {
  const calls = data.turn_near || [];
  const head = ["tn.ticket", "tn.time", "tn.result", "tn.played", "id"];
  $("turn-near").replaceChildren(data.turn_near_channel !== "call" ? el("p", {class: "muted"}, t("turnNearOff"))
    : calls.length ? el("div", {class: "table-wrap"}, el("table", {id: "turn-near-table"},
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {scope: "col"}, t(h))))),
      el("tbody", {}, ...calls.map(turnNearRow)))) : el("p", {class: "muted"}, t("turnNearNone")));
}

async function refresh() {
  try {
    const data = await api("/api/reminders/campaigns");
    draw(data);
    drawTurnNear(data);
    if (shown !== null) await showTargets(shown);
    $("page-error").hidden = true;
  }
  catch (err) { showError($("page-error"), err); }
}

async function setState(id, state) {
  try { await api(`/api/reminders/campaigns/${id}/state`, {method: "POST", body: {state}}); await refresh(); }
  catch (err) { showError($("page-error"), err); }
}

async function main() {
  ({t} = await startPage("/static/reminders/i18n.json"));
  $("start-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(ev.target);
    try {
      const data = await api("/api/reminders/campaigns", {method: "POST", body: {kind: $("kind").value}});
      $("page-status").textContent = t("started").replace("{id}", data.campaign.id);
      await refresh();
    } catch (err) { showError($("page-error"), err, ev.target); }
  });
  await refresh();
  document.body.dataset.ready = "1";
  setInterval(refresh, 2000);
}
main();
