"""One self-contained HTML page for a recording: the text coloured by a
unit chosen from a picker (tensor and index, or the finder's ranked list),
a tooltip per character (value, top-5 predictions, loss), and the
saturation, finder and gradient-flow results. No network, no CDN.

Every piece of text reaches the page as JSON inside a
<script type="application/json"> block, with <, >, & and the line
separators escaped, and is put into the document with textContent only:
a corpus holding `</script><img onerror=...>` shows as text.

Activations are stored as uint8, scaled per unit between its min and max
(the tooltip's values are within 1/255 of that range), base64-encoded.
"""

from __future__ import annotations

import base64
import json

import numpy as np

from .activations import Recording


def _quantise(acts: np.ndarray) -> dict:
    a = acts.astype(np.float32)
    lo, hi = a.min(0), a.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    q = np.round((a - lo) / span * 255).astype(np.uint8)  # (T, U)
    return {
        "lo": lo.round(5).tolist(),
        "hi": hi.round(5).tolist(),
        "units": [],
        "data": base64.b64encode(q.T.copy().tobytes()).decode("ascii"),  # unit-major
    }


def page_data(rec: Recording, analysis: dict | None, max_chars: int) -> dict:
    n = min(len(rec.text), max_chars)
    tensors = {}
    for name, acts in rec.tensors.items():
        entry = _quantise(acts[:n])
        entry["units"] = [int(u) for u in rec.units[name]]
        tensors[name] = entry
    vocab = list(rec.vocab.chars)
    return {
        "text": rec.text[:n],
        "truncated": len(rec.text) > n,
        "tensors": tensors,
        "top": [[[vocab[i], round(float(p), 4)] for i, p in zip(ids, probs)] for ids, probs in zip(rec.top_ids[:n], rec.top_probs[:n])],
        "loss": [None if np.isnan(x) else round(float(x), 4) for x in rec.loss[:n]],
        "analysis": analysis or {},
    }


def _json_for_script(obj) -> str:
    text = json.dumps(obj, ensure_ascii=False)
    for raw, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text


def render(rec: Recording, analysis: dict | None = None, max_chars: int = 3000) -> str:
    return PAGE.replace("__DATA__", _json_for_script(page_data(rec, analysis, max_chars)))


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>charrnn inspect</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
header { display: flex; gap: 1em; flex-wrap: wrap; align-items: center; margin-bottom: .8em; }
#text { font: 15px/1.6 ui-monospace, monospace; white-space: pre-wrap; border: 1px solid #ddd; padding: .8em; }
#text span { cursor: default; }
#tip { position: fixed; display: none; background: #fff; border: 1px solid #888; padding: .4em .6em;
       font: 13px ui-monospace, monospace; pointer-events: none; box-shadow: 2px 2px 6px #0003; }
#legend span { display: inline-block; width: 4.5em; text-align: center; font: 12px ui-monospace, monospace; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee; text-align: left; }
tr.pick { cursor: pointer; } tr.pick:hover { background: #f0f4ff; }
section { margin-top: 1.5em; } h2 { font-size: 1.1em; }
.pred { display: inline-block; padding: 0 .3em; margin-right: .2em; }
</style></head><body>
<h1>charrnn inspect</h1>
<header>
  <label>tensor <select id="tensor"></select></label>
  <label>unit <input id="unit" type="number" min="0" value="0" style="width:5em"></label>
  <label>finder <select id="ranked"><option value="">(pick a feature's unit)</option></select></label>
  <span id="now"></span>
</header>
<div id="legend"></div>
<div id="text"></div>
<p id="note"></p>
<div id="tip"></div>
<section><h2>Units that track each feature</h2><p>r on the held-out half; control: the same unit at random initialisation. Click a row to show it.</p><table id="finder"></table></section>
<section><h2>Gate saturation</h2><p>Each dot is a unit: fraction of time left-saturated (&lt; 0.1, x) against right-saturated (&gt; 0.9, y), as in Karpathy et al. (2015).</p><div id="saturation"></div></section>
<section><h2>Gradient flow</h2><p>Mean |d loss(t) / d h(t-k)| against k, log scale.</p><div id="flow"></div></section>
<script type="application/json" id="data">__DATA__</script>
<script>
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
for (const n of names) $("tensor").appendChild(el("option", n));
$("tensor").addEventListener("change", () => show($("tensor").value, +$("unit").value));
$("unit").addEventListener("change", () => show($("tensor").value, +$("unit").value));
$("ranked").addEventListener("change", () => { const [n, u] = $("ranked").value.split(":"); if (n) show(n, +u); });

const tip = $("tip");
spans.forEach((s, i) => {
  s.addEventListener("mousemove", ev => {
    tip.textContent = "";
    tip.appendChild(el("div", `${current} = ${values[i].toFixed(3)}   loss ${D.loss[i] === null ? "-" : D.loss[i].toFixed(2)} nats`));
    const row = el("div", "next: ");
    for (const [c, p] of D.top[i]) {
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

if (location.hash === "#selftest") {  // used by the tests: recolour, then report
  const before = spans.map(s => s.style.background).join("|");
  const other = names.find(n => n !== first.tensor) || names[0];
  show(other, D.tensors[other].units[D.tensors[other].units.length - 1]);
  const after = spans.map(s => s.style.background).join("|");
  const out = el("pre"); out.id = "selftest";
  out.textContent = JSON.stringify({errors, recoloured: before !== after, spans: spans.length, shown: current});
  document.body.appendChild(out);
}
</script></body></html>
"""
