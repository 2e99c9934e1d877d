// Shared helpers for clinicall pages: JSON calls that surface problem+json details, and i18n.
export async function api(path, {method = "GET", body, headers = {}} = {}) {
  const init = {method, headers: {Accept: "application/json", ...headers}, credentials: "same-origin"};
  if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const response = await fetch(path, init);
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (response.status === 401 && !path.startsWith("/api/login")) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
  if (!response.ok) { const err = new Error((data && data.detail) || response.statusText); err.problem = data; err.status = response.status; throw err; }
  return data;
}

export function pickLanguage(supported = ["vi", "en"], fallback = "vi") {
  const asked = new URLSearchParams(location.search).get("lang") || localStorage.getItem("clinicall.lang") || fallback;
  return supported.includes(asked) ? asked : fallback;
}

export function setLanguage(lang) { localStorage.setItem("clinicall.lang", lang); }

export function translate(dict, lang) {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) {
    const text = (dict[lang] || {})[el.dataset.i18n];
    if (text !== undefined) el.textContent = text;
  }
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    const text = (dict[lang] || {})[el.dataset.i18nPlaceholder];
    if (text !== undefined) el.placeholder = text;
  }
  return (key) => (dict[lang] || {})[key] ?? (dict.en || {})[key] ?? key;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}
