// An invited referring doctor makes his account (/referrer/join?token=...), then goes to /referrer.
const ERRORS = {invite_invalid: "Đường dẫn mời không hợp lệ, đã dùng hoặc đã hết hạn; hãy xin phòng khám đường dẫn mới.",
  password_too_short: "Mật khẩu cần ít nhất 10 ký tự.", password_too_simple: "Mật khẩu quá đơn giản.",
  password_common: "Mật khẩu quá phổ biến; hãy chọn mật khẩu khác.", password_contains_username: "Mật khẩu không được chứa tên đăng nhập."};
const token = new URLSearchParams(location.search).get("token") || "";
const error = document.getElementById("error");

document.getElementById("join").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = {token, username: document.getElementById("username").value.trim().toLowerCase(), password: document.getElementById("password").value};
  const response = await fetch("/api/referrer-invites/accept", {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", Accept: "application/json"}, body: JSON.stringify(body)});
  const data = await response.json().catch(() => ({}));
  if (response.ok) { location.href = "/referrer"; return; }
  error.textContent = ERRORS[data.code] || (response.status === 409 ? "Tên đăng nhập đã có người dùng; hãy chọn tên khác." : "Không tạo được tài khoản; kiểm tra lại thông tin.");
  error.dataset.code = data.code || "";
  error.hidden = false;
});
document.body.dataset.ready = "1";
