// The patient's own page (/me), in Vietnamese, for a phone: log in with the phone number, change the
// one-time password at the first login, then the visits, the entries and results marked visible, and
// today's queue ticket.
const $ = (id) => document.getElementById(id);
const STATUS = {waiting: "Đang chờ", called: "Mời vào phòng", serving: "Đang khám", done: "Đã khám xong", skipped: "Đã qua lượt",
  noshow: "Vắng mặt", expired: "Hết ngày, chưa được gọi", held: "Tạm giữ"};
const ERRORS = {login_failed: "Số điện thoại hoặc mật khẩu không đúng.", login_throttled: "Đăng nhập sai quá nhiều lần; vui lòng thử lại sau.",
  current_password_wrong: "Mật khẩu tạm không đúng.", password_unchanged: "Hãy chọn mật khẩu mới, khác mật khẩu tạm.",
  password_contains_phone: "Mật khẩu không được chứa số điện thoại.", password_too_short: "Mật khẩu cần ít nhất 10 ký tự.",
  password_too_simple: "Mật khẩu quá đơn giản.", password_common: "Mật khẩu quá phổ biến; hãy chọn mật khẩu khác.",
  password_contains_username: "Mật khẩu không được chứa số điện thoại."};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function day(iso) { const [y, m, d] = String(iso).slice(0, 10).split("-"); return `${d}/${m}/${y}`; }

async function call(path, body) {
  const init = {credentials: "same-origin", headers: {Accept: "application/json"}};
  if (body) Object.assign(init, {method: "POST", body: JSON.stringify(body), headers: {...init.headers, "Content-Type": "application/json"}});
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  return {status: response.status, data};
}

function show(id) { for (const part of ["login", "change", "records"]) $(part).hidden = part !== id; }

function fail(data) {
  $("error").textContent = ERRORS[data.code] || "Không thực hiện được; vui lòng thử lại.";
  $("error").dataset.code = data.code || "";
  $("error").hidden = false;
}

async function load() {
  const {status, data} = await call("/api/patient/me");
  $("error").hidden = true;
  if (status === 401 || (status === 404 && data.code === "patient_account_missing")) { show("login"); return; }
  if (status === 403 && data.code === "password_change_required") { show("change"); return; }
  if (status !== 200) { fail(data); return; }
  show("records");
  $("name").textContent = data.full_name;
  $("ticket-box").hidden = !data.tickets.length;
  $("tickets").replaceChildren(...data.tickets.map((t) => el("li", {}, el("span", {class: "ticket"}, t.number), " ",
    `${t.service_name} · ${STATUS[t.status] || t.status}`, t.room ? ` · ${t.room.name || ""}` : "")));
  $("visits").replaceChildren(...data.visits.map((v) => el("li", {"data-visit": v.visit}, el("strong", {}, v.label), `: ${day(v.date)}`)));
  $("entries").replaceChildren(...data.entries.map((e) => el("li", {"data-entry": e.id}, el("strong", {}, day(e.day)),
    ` ${[e.doctor, e.progress, e.orders ? `Y lệnh: ${e.orders}` : "", e.revisit_date ? `Tái khám: ${day(e.revisit_date)}` : ""].filter(Boolean).join(" · ")}`)));
  $("files").replaceChildren(...data.files.map((f) => el("li", {"data-file": f.id}, el("a", {href: f.url, download: f.filename}, f.filename),
    ` · ${f.group === "lab" ? "Xét nghiệm" : "Chẩn đoán hình ảnh"} · ${day(f.created_at)}`)));
  for (const list of ["visits", "entries", "files"]) if (!$(list).children.length) $(list).append(el("li", {class: "muted"}, "Chưa có."));
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const {status, data} = await call("/api/patient/login", {phone: $("phone").value, password: $("password").value});
  if (status !== 200) { fail(data); return; }
  $("password").value = "";
  await load();
});

$("change").addEventListener("submit", async (e) => {
  e.preventDefault();
  const {status, data} = await call("/api/patient/password", {current_password: $("current").value, new_password: $("new").value});
  if (status !== 200) { fail(data); return; }
  $("status").textContent = "Đã đổi mật khẩu.";
  await load();
});

load().then(() => { document.body.dataset.ready = "1"; }, () => fail({}));
