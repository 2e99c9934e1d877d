// Hand-written SVG charts: accessible (role="img", <title>, <desc>) and always paired with a data table.
const SVG = "http://www.w3.org/2000/svg";
// Colours with at least 3:1 contrast against white (WCAG 1.4.11), distinguishable in grey too.
export const PALETTE = ["#0b5cad", "#a4161a", "#1b6e2d", "#8a4b00", "#5b2a86", "#00677f", "#6b6b00", "#b0306a"];

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// The axis top: four equal steps of 1, 2 or 5 times a power of ten (whole numbers for counts).
function niceMax(value, ticks = 4) {
  if (value <= 0) return ticks;
  const raw = value / ticks;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return Math.max(1, m * p) * ticks;
  return 10 * p * ticks;
}

function shorten(text, max) { return text.length > max ? text.slice(0, max - 1) + "…" : text; }

let counter = 0;

// Grouped (or stacked) vertical bars. series: [{name, values: [number per label]}].
export function barChart({title, description = "", labels, series, stacked = false, unit = "", format = (v) => String(v), minMax = unit === "%" ? 100 : 4}) {
  const id = `chart-${++counter}`;
  const longest = Math.max(0, ...labels.map((l) => String(l).length));
  const rotate = labels.length > 8 || longest > 14;
  const slotMin = Math.max(stacked ? 40 : 18 * series.length + 14, rotate ? 34 : Math.min(160, longest * 7.5 + 12));
  const width = Math.max(480, 60 + labels.length * slotMin);
  const height = rotate ? 300 : 260;
  const pad = {l: 48, r: 12, t: 16, b: rotate ? 104 : 48};
  const plotW = width - pad.l - pad.r;
  const plotH = height - pad.t - pad.b;
  const totals = labels.map((_, i) => stacked ? series.reduce((s, x) => s + (Number(x.values[i]) || 0), 0)
    : Math.max(0, ...series.map((x) => Number(x.values[i]) || 0)));
  const top = Math.max(0, ...totals);
  const max = unit === "%" && top <= 100 ? 100 : Math.max(minMax, niceMax(top));
  const root = svg("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img", class: "chart",
    "aria-labelledby": `${id}-t ${id}-d`});
  root.append(svg("title", {id: `${id}-t`}, title), svg("desc", {id: `${id}-d`}, description || title));
  for (let k = 0; k <= 4; k++) {
    const v = (max / 4) * k;
    const y = pad.t + plotH - (v / max) * plotH;
    root.append(svg("line", {x1: pad.l, x2: width - pad.r, y1: y, y2: y, stroke: "#c9c9c9"}),
      svg("text", {x: pad.l - 6, y: y + 4, "text-anchor": "end"}, format(Math.round(v * 100) / 100) + unit));
  }
  const slot = plotW / Math.max(1, labels.length);
  labels.forEach((label, i) => {
    const x0 = pad.l + i * slot;
    let stackTop = 0;
    series.forEach((s, j) => {
      const v = Number(s.values[i]) || 0;
      const h = (v / max) * plotH;
      const barW = stacked ? slot * 0.6 : (slot * 0.8) / series.length;
      const x = stacked ? x0 + slot * 0.2 : x0 + slot * 0.1 + j * barW;
      const y = pad.t + plotH - h - (stacked ? stackTop : 0);
      if (stacked) stackTop += h;
      const rect = svg("rect", {x, y, width: Math.max(1, barW - 2), height: Math.max(0, h), fill: PALETTE[j % PALETTE.length]});
      rect.append(svg("title", {}, `${label} · ${s.name}: ${format(v)}${unit}`));
      root.append(rect);
    });
    const tick = svg("text", rotate
      ? {x: x0 + slot / 2, y: height - pad.b + 14, "text-anchor": "end", transform: `rotate(-40 ${x0 + slot / 2} ${height - pad.b + 14})`}
      : {x: x0 + slot / 2, y: height - pad.b + 18, "text-anchor": "middle"}, shorten(String(label), 18));
    tick.append(svg("title", {}, String(label)));
    root.append(tick);
  });
  root.append(svg("line", {x1: pad.l, x2: width - pad.r, y1: pad.t + plotH, y2: pad.t + plotH, stroke: "#111"}));
  return wrap(root, title, labels, series, unit, format);
}

function wrap(chart, title, labels, series, unit, format) {
  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption, chart);
  if (series.length > 1) {
    const legend = document.createElement("ul");
    legend.className = "legend";
    series.forEach((s, j) => {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = PALETTE[j % PALETTE.length];
      swatch.setAttribute("aria-hidden", "true");
      li.append(swatch, " ", s.name);
      legend.append(li);
    });
    figure.append(legend);
  }
  figure.append(dataTable(title, labels, series, unit, format));
  return figure;
}

// The same numbers as a table (for screen readers and for anyone who prefers numbers).
export function dataTable(title, labels, series, unit = "", format = (v) => String(v)) {
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = `${title} — ${document.documentElement.lang === "en" ? "data table" : "bảng số liệu"}`;
  const table = document.createElement("table");
  table.className = "compact";
  const caption = document.createElement("caption");
  caption.textContent = title;
  const head = document.createElement("tr");
  for (const h of ["", ...series.map((s) => s.name)]) { const th = document.createElement("th"); th.scope = "col"; th.textContent = h; head.append(th); }
  const thead = document.createElement("thead"); thead.append(head);
  const tbody = document.createElement("tbody");
  labels.forEach((label, i) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.scope = "row"; th.textContent = label; tr.append(th);
    for (const s of series) { const td = document.createElement("td"); td.textContent = format(Number(s.values[i]) || 0) + unit; tr.append(td); }
    tbody.append(tr);
  });
  table.append(caption, thead, tbody);
  details.append(summary, table);
  return details;
}
