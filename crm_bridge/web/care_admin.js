// The admin console's care-loop sections (imported by /static/admin/admin.js): referring doctors (users with
// the role referrer: create, disable), patient accounts (reset the one-time password, disable) and the
// referral statistics (referred -> booked -> arrived -> in treatment) with their exports.
import {api, el, items, fmtDateTime, showError, exportLinks} from "/static/admin/console.js";

// ui: {t, table, createForm, render, saved, lang, $}
export async function referrersSection(box, ui) {
  const {t, table, createForm, render, saved} = ui;
  const users = items(await api("/api/users"), "users").filter((u) => u.roles.includes("referrer"));
  box.append(table(["username", "display_name", "active", ""], users.map((u) => [u.username, u.display_name,
    u.active ? t("yes") : t("no"), el("button", {type: "button", class: "secondary small", "data-user": u.username, onclick: async () => {
      try { await api(`/api/users/${u.id}`, {method: "PATCH", body: {active: !u.active}}); saved(); render(); } catch (err) { showError(ui.$("page-error"), err); }
    }}, u.active ? t("deactivate") : t("activate"))])));
  box.append(createForm("addReferrer", [{name: "username", required: true}, {name: "display_name", required: true},
    {name: "password", type: "password", required: true}],
  async (v) => { await api("/api/users", {method: "POST", body: {...v, roles: ["referrer"]}}); render(); }));
  const once = el("div", {id: "invite-once", role: "status"});
  box.append(createForm("inviteReferrer", [{name: "display_name", required: true}, {name: "days", type: "number", value: 14, min: 1, max: 60}],
    async (v) => {
      const made = await api("/api/referrer-invites", {method: "POST", body: v});
      once.replaceChildren(el("div", {class: "panel"}, el("p", {}, t("inviteOnce")), el("p", {class: "secret", id: "invite-url"}, made.url)));
    }), once);
}

export async function accountsSection(box, ui) {
  const {t, table, render, saved, lang} = ui;
  const once = el("div", {id: "account-once", role: "status"});
  box.append(once);
  const rows = items(await api("/api/patient-accounts"));
  box.append(table(["full_name", "username", "active", "mustChange", "created_at", ""], rows.map((a) => [a.full_name, a.username,
    a.active ? t("yes") : t("no"), a.must_change_password ? t("yes") : t("no"), fmtDateTime(a.created_at, lang),
    el("span", {}, el("button", {type: "button", class: "secondary small", "data-reset": a.patient_id, onclick: async () => {
      try {
        const made = await api(`/api/patient-accounts/${a.patient_id}/reset`, {method: "POST"});
        await render();
        ui.$("account-once").replaceChildren(el("div", {class: "panel"}, el("p", {}, t("otpOnce")),
          el("p", {class: "secret", id: "account-otp"}, `${made.username}: ${made.one_time_password}`),
          el("textarea", {rows: "3", readonly: true, style: "width:100%"}, made.message)));
      } catch (err) { showError(ui.$("page-error"), err); }
    }}, t("resetPassword")), " ",
    el("button", {type: "button", class: "secondary small", "data-toggle": a.patient_id, onclick: async () => {
      try { await api(`/api/patient-accounts/${a.patient_id}`, {method: "PATCH", body: {active: !a.active}}); saved(); render(); } catch (err) { showError(ui.$("page-error"), err); }
    }}, a.active ? t("deactivate") : t("activate")))])));
}

export function referralStats(data, q, ui) {
  const {t, table} = ui;
  if (data.error) return [];
  const pct = (r) => `${Math.round((r.conversion || 0) * 1000) / 10}%`;
  return [el("section", {class: "panel", id: "referral-stats"}, el("h2", {}, t("referralStats")),
    table(["referrer", "referred", "booked", "arrived", "treated", "conversion"], items(data, "referrers").map((r) => [
      r.referrer_name, String(r.referred), String(r.booked), String(r.arrived), String(r.in_treatment), pct(r)])),
    el("p", {}, exportLinks(`/api/stats/referrals?${q}`)))];
}
