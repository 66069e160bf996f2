"use strict";
const errors = [];
window.addEventListener("error", e => errors.push(String(e.message)));
const origError = console.error;
console.error = (...a) => { errors.push(a.map(String).join(" ")); origError(...a); };

const D = JSON.parse(document.getElementById("data").textContent);
const $ = id => document.getElementById(id);
const el = (tag, text) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; return e; };
const names = Object.keys(D.tensors);
const cache = {};
function column(name, unit) {
  const t = D.tensors[name], idx = t.units.indexOf(unit);
  if (idx < 0) return null;
  if (!cache[name]) cache[name] = Uint8Array.from(atob(t.data), c => c.charCodeAt(0));
  const n = D.text.length, q = cache[name].subarray(idx * n, (idx + 1) * n);
  const lo = t.lo[idx], hi = t.hi[idx];
  return Array.from(q, v => lo + (hi - lo) * v / 255);
}
function colour(x) {  // -1 blue, 0 white, +1 red
  x = Math.max(-1, Math.min(1, x)); const f = Math.round(255 * (1 - Math.abs(x)));
  return x >= 0 ? `rgb(255,${f},${f})` : `rgb(${f},${f},255)`;
}
const spans = [];
for (const ch of D.text) {
  const s = el("span", ch === "\n" ? "\u21b5\n" : ch);
  spans.push(s); $("text").appendChild(s);
}
if (D.truncated) $("note").textContent = `Showing the first ${D.text.length} characters.`;
let values = [], scale = 1, current = "";
function show(name, unit) {
  const v = column(name, unit);
  if (!v) { $("now").textContent = `unit ${unit} of ${name} was not recorded`; return; }
  values = v; scale = Math.max(...v.map(Math.abs)) || 1; current = `${name}:${unit}`;
  spans.forEach((s, i) => { s.style.background = colour(v[i] / scale); });
  $("now").textContent = current;
  $("tensor").value = name; $("unit").value = unit;
  const legend = $("legend"); legend.textContent = "";
  for (const x of [-1, -0.5, 0, 0.5, 1]) { const s = el("span", (x * scale).toFixed(2)); s.style.background = colour(x); legend.appendChild(s); }
}
// The surprise view: each character coloured by the probability the model
// gave it (from the position before), as in the blog post's figures.
const SURPRISE = "surprise (probability of each character)";
function showSurprise() {
  values = Array.from(spans, (_, j) => j > 0 && D.loss[j - 1] !== null ? Math.exp(-D.loss[j - 1]) : null);
  current = SURPRISE;
  spans.forEach((s, j) => { s.style.background = values[j] === null ? "" : colour(1 - values[j]); });
  $("now").textContent = "red: the model gave the character a low probability";
  $("tensor").value = SURPRISE;
  const legend = $("legend"); legend.textContent = "";
  for (const p of [1, 0.75, 0.5, 0.25, 0]) { const s = el("span", `p ${p}`); s.style.background = colour(1 - p); legend.appendChild(s); }
}
// The comparison view (charrnn compare --html): each character by how much
// more probability the model gave it than the best n-gram model did.
const CMP = D.analysis.compare, VERSUS = CMP ? `the model against the best n-gram (n = ${CMP.n})` : null;
function showVersus() {
  values = Array.from(spans, (_, j) => j > 0 && j - 1 < CMP.model.length ? CMP.model[j - 1] - CMP.ngram[j - 1] : null);
  current = VERSUS;
  spans.forEach((s, j) => { s.style.background = values[j] === null ? "" : colour(-values[j] / 3); });
  $("now").textContent = "blue: the model gave the character more probability than the n-gram; red: less";
  $("tensor").value = VERSUS;
  const legend = $("legend"); legend.textContent = "";
  for (const x of [3, 1.5, 0, -1.5, -3]) { const s = el("span", `${x > 0 ? "+" : ""}${x} nats`); s.style.background = colour(-x / 3); legend.appendChild(s); }
}
const pick = () => $("tensor").value === SURPRISE ? showSurprise() : $("tensor").value === VERSUS ? showVersus()
  : show($("tensor").value, +$("unit").value);
for (const n of names) $("tensor").appendChild(el("option", n));
$("tensor").appendChild(el("option", SURPRISE));
if (VERSUS) $("tensor").appendChild(el("option", VERSUS));
$("tensor").addEventListener("change", pick);
$("unit").addEventListener("change", pick);
$("ranked").addEventListener("change", () => { const [n, u] = $("ranked").value.split(":"); if (n) show(n, +u); });

const tip = $("tip");
spans.forEach((s, i) => {
  s.addEventListener("mousemove", ev => {
    tip.textContent = "";
    const versus = current === VERSUS, surprise = current === SURPRISE || versus;
    if (surprise && values[i] === null) { tip.style.display = "none"; return; }  // the first character: nothing predicted it
    const at = surprise ? i - 1 : i;  // surprise: what the model expected here; a unit: what it expects next
    tip.appendChild(el("div", versus ? `model p = ${Math.exp(CMP.model[at]).toFixed(3)}   ${CMP.n}-gram p = ${Math.exp(CMP.ngram[at]).toFixed(3)}`
      : surprise ? `p = ${values[i].toFixed(3)}   loss ${D.loss[at].toFixed(2)} nats`
      : `${current} = ${values[i].toFixed(3)}   loss ${D.loss[i] === null ? "-" : D.loss[i].toFixed(2)} nats`));
    const row = el("div", surprise ? "expected: " : "next: ");
    for (const [c, p] of D.top[at]) {
      const b = el("span", JSON.stringify(c).slice(1, -1)); b.className = "pred";
      b.style.background = `rgba(40,120,255,${p})`; b.title = p.toFixed(3); row.appendChild(b);
    }
    tip.appendChild(row);
    tip.style.display = "block"; tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px";
  });
  s.addEventListener("mouseleave", () => { tip.style.display = "none"; });
});

const A = D.analysis, finder = $("finder");
if (A.features) {
  const head = el("tr"); for (const h of ["feature", "tensor", "unit", "r", "r control"]) head.appendChild(el("th", h)); finder.appendChild(head);
  for (const [feat, rows] of Object.entries(A.features)) {
    rows.forEach((r, k) => {
      const tr = el("tr"); tr.className = "pick";
      for (const c of [k ? "" : feat, r.tensor, r.unit, r.r.toFixed(2), r.r_control.toFixed(2)]) tr.appendChild(el("td", String(c)));
      tr.addEventListener("click", () => show(r.tensor, r.unit));
      finder.appendChild(tr);
      const o = el("option", `${feat}: ${r.tensor}:${r.unit} (r ${r.r.toFixed(2)})`); o.value = `${r.tensor}:${r.unit}`;
      $("ranked").appendChild(o);
    });
  }
}
const SVG = "http://www.w3.org/2000/svg";
function svg(w, h) { const s = document.createElementNS(SVG, "svg"); s.setAttribute("width", w); s.setAttribute("height", h); return s; }
function add(parent, tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e); return e;
}
const palette = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
if (A.saturation && Object.keys(A.saturation).length) {
  const s = svg(360, 340), box = 280, ox = 50, oy = 20;
  add(s, "rect", {x: ox, y: oy, width: box, height: box, fill: "none", stroke: "#999"});
  add(s, "text", {x: ox + box / 2, y: oy + box + 30, "text-anchor": "middle"}, "left-saturated");
  add(s, "text", {x: 12, y: oy + box / 2, transform: `rotate(-90 12 ${oy + box / 2})`, "text-anchor": "middle"}, "right-saturated");
  Object.entries(A.saturation).forEach(([name, sat], k) => {
    sat.left.forEach((l, j) => add(s, "circle", {cx: ox + l * box, cy: oy + box - sat.right[j] * box, r: 2.5, fill: palette[k % palette.length], "fill-opacity": .6}));
    add(s, "text", {x: ox + box - 40, y: oy + 15 + 14 * k, fill: palette[k % palette.length]}, name);
  });
  $("saturation").appendChild(s);
}
if (A.gradient_flow && Object.keys(A.gradient_flow).length) {
  const s = svg(420, 260), w = 340, h = 200, ox = 60, oy = 10;
  const all = Object.values(A.gradient_flow).flat().filter(v => v > 0);
  const lmin = Math.log10(Math.min(...all)), lmax = Math.log10(Math.max(...all)) || 1;
  add(s, "rect", {x: ox, y: oy, width: w, height: h, fill: "none", stroke: "#999"});
  add(s, "text", {x: ox + w / 2, y: oy + h + 35, "text-anchor": "middle"}, "k (characters back)");
  Object.entries(A.gradient_flow).forEach(([name, norms], k) => {
    const pts = norms.map((v, i) => `${ox + w * i / Math.max(1, norms.length - 1)},${oy + h - h * (Math.log10(Math.max(v, 1e-30)) - lmin) / ((lmax - lmin) || 1)}`);
    add(s, "polyline", {points: pts.join(" "), fill: "none", stroke: palette[k % palette.length], "stroke-width": 2});
    add(s, "text", {x: ox + w - 50, y: oy + 15 + 14 * k, fill: palette[k % palette.length]}, name);
  });
  add(s, "text", {x: ox - 5, y: oy + 10, "text-anchor": "end", "font-size": 11}, "1e" + lmax.toFixed(1));
  add(s, "text", {x: ox - 5, y: oy + h, "text-anchor": "end", "font-size": 11}, "1e" + lmin.toFixed(1));
  $("flow").appendChild(s);
}
const first = (A.features && Object.values(A.features).flat()[0]) || {tensor: names[0], unit: D.tensors[names[0]].units[0]};
show(first.tensor, first.unit);
if (location.hash === "#surprise") showSurprise();
if (VERSUS && !location.hash.startsWith("#selftest")) showVersus();

if (location.hash === "#selftest") {  // used by the tests: recolour, then report
  const before = spans.map(s => s.style.background).join("|");
  const other = names.find(n => n !== first.tensor) || names[0];
  show(other, D.tensors[other].units[D.tensors[other].units.length - 1]);
  const after = spans.map(s => s.style.background).join("|");
  $("tensor").value = SURPRISE; $("tensor").dispatchEvent(new Event("change"));
  const surprise = spans.map(s => s.style.background);
  spans[3].dispatchEvent(new MouseEvent("mousemove", {clientX: 5, clientY: 5}));
  const report = {errors, recoloured: before !== after, spans: spans.length, shown: current, surprise,
                  probabilities: values, tip: tip.textContent};
  if (VERSUS) {
    $("tensor").value = VERSUS; $("tensor").dispatchEvent(new Event("change"));
    spans[3].dispatchEvent(new MouseEvent("mousemove", {clientX: 5, clientY: 5}));
    Object.assign(report, {versus: values, versusColours: spans.map(s => s.style.background), versusTip: tip.textContent});
  }
  const out = el("pre"); out.id = "selftest";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
}
