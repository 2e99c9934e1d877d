"""A small axe-like accessibility check run inside the page: every form control has a label, every
button and link a name, every chart an accessible title, dialogs a label, and visible text meets the
WCAG 2.1 AA contrast ratio (4.5:1, or 3:1 for large text) against its effective background."""

from __future__ import annotations

from typing import Any

AUDIT_JS = r"""
() => {
  const problems = [];
  const visible = (el) => {
    const s = getComputedStyle(el);
    if (s.display === "none" || s.visibility === "hidden") return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && !el.closest("[hidden]") && !(el.closest("dialog") && !el.closest("dialog").open);
  };
  const describe = (el) => el.outerHTML.slice(0, 120);
  const nameOf = (el) => {
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label").trim();
    const by = el.getAttribute("aria-labelledby");
    if (by) return by.split(/\s+/).map((id) => (document.getElementById(id) || {}).textContent || "").join(" ").trim();
    if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(" ").trim();
    if (el.closest("fieldset") && el.type === "checkbox") return (el.closest("label") || {}).textContent || "";
    return (el.textContent || el.value || el.getAttribute("title") || "").trim();
  };
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!visible(el)) continue;
    const labelled = (el.labels && el.labels.length && [...el.labels].some((l) => l.textContent.trim())) ||
      el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!labelled) problems.push("unlabelled control: " + describe(el));
  }
  for (const el of document.querySelectorAll("button, a[href], [role=tab]")) {
    if (visible(el) && !nameOf(el)) problems.push("control without a name: " + describe(el));
  }
  for (const el of document.querySelectorAll("dialog[open]")) {
    if (!el.getAttribute("aria-labelledby") && !el.getAttribute("aria-label")) problems.push("dialog without a label");
  }
  for (const el of document.querySelectorAll("svg[role=img]")) {
    if (!el.querySelector("title") || !el.querySelector("title").textContent.trim()) problems.push("chart without a title");
  }
  if (!document.documentElement.lang) problems.push("page without lang");
  if (!document.title.trim()) problems.push("page without title");
  // Contrast of text against the first opaque background behind it.
  const rgb = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(",").map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = ({r, g, b}) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (let n = el; n; n = n.parentElement) { const c = rgb(getComputedStyle(n).backgroundColor); if (c && c.a > 0.5) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || !node.textContent.trim() || seen.has(el) || !visible(el)) continue;
    if (el.closest(".visually-hidden, svg, option, [disabled], button:disabled")) continue;
    seen.add(el);
    const s = getComputedStyle(el);
    const fg = rgb(s.color); if (!fg) continue;
    const bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(s.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}:1 for "${node.textContent.trim().slice(0, 40)}"`);
  }
  return problems;
}
"""


async def audit(page: Any) -> list[str]:
    return list(await page.evaluate(AUDIT_JS))


async def focus_is_visible(page: Any) -> bool:
    """The focused element draws an outline (base.css :focus-visible) after keyboard navigation."""
    return bool(await page.evaluate(
        "() => { const el = document.activeElement; if (!el || el === document.body) return false;"
        " const s = getComputedStyle(el); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }"))


async def tab_walk(page: Any, presses: int = 40) -> list[str]:
    """Press Tab `presses` times from the top of the page; every focused control must show a focus
    ring. Returns what was focused (id, else class, else tag), so callers can check the order and
    that focus moved on (no keyboard trap)."""
    await page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    seen: list[str] = []
    for _ in range(presses):
        await page.keyboard.press("Tab")
        name = await page.evaluate("() => { const e = document.activeElement;"
                                   " return e === document.body ? '' : (e.id || e.className || e.tagName); }")
        if not name:  # focus left the page for the browser's own UI, and comes back on the next Tab
            continue
        assert await focus_is_visible(page), f"no visible focus on {name}"
        seen.append(name)
    return seen
