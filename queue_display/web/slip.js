// A ticket's slip printed again at reception: the same number; the server keeps each print in its history.
import {api, pickLanguage, translate} from "/static/clinicall/api.js";

const DICT = {
  vi: {heading: "Số thứ tự của bạn", follow: "Quét mã để theo dõi lượt của bạn", print: "In", copy: "In lại lần {n}",
       issued: "Lấy số lúc {time}", failed: "Không in được phiếu: {detail}"},
  en: {heading: "Your number", follow: "Scan to follow your turn", print: "Print", copy: "Reprint no. {n}",
       issued: "Issued at {time}", failed: "The slip could not be printed: {detail}"},
  zh: {heading: "您的号码", follow: "扫码查看排队进度", print: "打印", copy: "第 {n} 次补打",
       issued: "取号时间 {time}", failed: "无法打印号码条：{detail}"},
};
const $ = (id) => document.getElementById(id);

async function main() {
  const lang = pickLanguage(["vi", "en", "zh"], "vi");
  translate(DICT, lang);
  const t = (key, vars = {}) => (DICT[lang][key] || key).replace(/\{(\w+)\}/g, (_, k) => vars[k] ?? "");
  const id = location.pathname.split("/")[3];
  let data;
  try {
    data = await api(`/api/tickets/${encodeURIComponent(id)}/slip`, {method: "POST", body: {}});
  } catch (err) {
    $("error").textContent = t("failed", {detail: (err.problem && err.problem.detail) || err.message});
    $("error").hidden = false;
    return;
  }
  const ticket = data.ticket;
  $("clinic").textContent = data.clinic;
  $("number").textContent = ticket.number;
  $("service").textContent = ticket.service_name || "";
  const issued = new Date(ticket.issued_at);
  $("issued").textContent = t("issued", {time: issued.toLocaleString(lang === "zh" ? "zh-CN" : lang === "en" ? "en-GB" : "vi-VN")});
  $("link").textContent = ticket.status_url;
  $("copy").textContent = t("copy", {n: data.printed});
  $("slip").hidden = false;
  $("print").hidden = false;
  $("print").addEventListener("click", () => window.print());
  const qr = $("qr");
  qr.addEventListener("load", () => { document.body.dataset.ready = "1"; window.print(); }, {once: true});
  qr.addEventListener("error", () => { document.body.dataset.ready = "1"; window.print(); }, {once: true});
  qr.src = ticket.qr_svg_url;
}

main();
