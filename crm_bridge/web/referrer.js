// The referring doctor's page (/referrer): send a patient with files; his own referred patients in four
// lists (new ones highlighted); for each, the status, visits, the entries and results the clinic marked for
// him, and what he sent.
import {api, el, startPage, fmtDate, fmtDateTime, showError, clearFieldErrors, exportLinks} from "/static/admin/console.js";

const LISTS = ["new", "in_treatment", "finished", "closed"];
const $ = (id) => document.getElementById(id);
let t = (k) => k;
let current = "new";

function status(text) { const s = $("page-status"); s.textContent = ""; setTimeout(() => { s.textContent = text; }, 30); }

async function upload(path, formData) {
  const response = await fetch(path, {method: "POST", body: formData, credentials: "same-origin", headers: {Accept: "application/json"}});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { const err = new Error(data.detail || response.statusText); err.problem = data; err.status = response.status; throw err; }
  return data;
}

async function loadList() {
  const data = await api(`/api/referrals?list=${current}`);
  $("list-tabs").replaceChildren(...LISTS.map((name) => el("button", {type: "button", role: "tab", class: "secondary small",
    "data-list": name, "aria-selected": String(name === current), onclick: () => { current = name; loadList(); }},
  `${t("list." + name)} (${data.counts[name]})`)));
  const list = $("referrals");
  list.replaceChildren(...data.items.map((p) => el("li", {class: current === "new" ? "referral-new" : undefined, "data-patient": p.id},
    el("button", {type: "button", class: "link", onclick: () => openDetail(p.id)}, p.full_name),
    ` · ${t("care." + p.care_status)} · ${fmtDate(p.created_at)}`)));
  if (!data.items.length) list.append(el("li", {class: "muted"}, t("empty")));
  $("referrals-export").replaceChildren(data.items.length ? exportLinks(`/api/referrals?list=${current}`) : "");
}

function fileItem(f) {
  return el("li", {"data-file": f.id}, el("a", {href: f.url, download: f.filename}, f.filename), ` · ${fmtDateTime(f.created_at)}`);
}

async function openDetail(id) {
  const data = await api(`/api/referrals/${id}`);
  const p = data.patient;
  $("detail").hidden = false;
  $("detail-name").textContent = p.full_name;
  $("detail-status").className = `badge ${p.care_status}`;
  $("detail-status").textContent = t("care." + p.care_status);
  $("detail-service").textContent = p.service_of_interest || "";
  $("detail-visits").replaceChildren(...data.visits.map((v) => el("li", {}, `${v.visit ? `${t("revisitN")} ${v.visit}` : t("firstVisit")}: ${fmtDate(v.date)}`)));
  $("detail-entries").replaceChildren(...data.entries.map((e) => el("li", {"data-entry": e.id},
    el("strong", {}, fmtDate(e.day)), ` ${[e.doctor, e.progress, e.orders].filter(Boolean).join(" · ")}`)));
  $("detail-results").replaceChildren(...data.files.filter((f) => f.group !== "referral").map(fileItem));
  $("detail-note").textContent = p.referral_note || "";
  $("detail-sent").replaceChildren(...data.files.filter((f) => f.group === "referral").map(fileItem));
  for (const box of ["detail-entries", "detail-results", "detail-sent", "detail-visits"]) {
    if (!$(box).children.length) $(box).append(el("li", {class: "muted"}, t("empty")));
  }
  $("detail").dataset.patient = String(p.id);
}

async function main() {
  const page = await startPage("/static/crm_bridge/i18n/referrer.json");
  t = page.t;
  $("refer-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    clearFieldErrors(form);
    $("refer-error").hidden = true;
    const data = new FormData();
    for (const name of ["full_name", "phone", "service_of_interest", "note"]) data.append(name, form.elements[name].value);
    for (const file of $("r-files").files) data.append("files", file, file.name);
    try {
      await upload("/api/referrals", data);
      form.reset();
      current = "new";
      await loadList();
      status(t("sentOk"));
    } catch (err) { showError($("refer-error"), err, form); }
  });
  await loadList();
  document.body.dataset.ready = "1";
}

main().catch((err) => showError($("page-error"), err));
