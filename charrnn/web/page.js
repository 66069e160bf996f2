"use strict";
// charrnn's generator, in plain JavaScript: the model steps one character
// at a time exactly as `charrnn sample` does (embedding, each layer's
// cell step on W_ih x + b_ih and W_hh h + b_hh, the head), with float64
// arithmetic on the embedded weights. Text only ever reaches the page as
// textContent.
const errors = [];
window.addEventListener("error", e => errors.push(String(e.message)));
document.addEventListener("securitypolicyviolation", e => errors.push("CSP: " + e.violatedDirective));
const $ = id => document.getElementById(id);
const D = JSON.parse($("data").textContent);
const sig = x => 1 / (1 + Math.exp(-x));
const cellStep = __STEP__;

function bytesOf(b64) {
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
function half(bits) {  // IEEE binary16 -> number
  const e = (bits >> 10) & 31, m = bits & 1023, sign = bits & 32768 ? -1 : 1;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}
function decode(t) {  // {shape, data} (little-endian bytes of D.dtype) -> Float32Array
  const bytes = bytesOf(t.data), view = new DataView(bytes.buffer), n = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (D.dtype === "fp32") out[i] = view.getFloat32(4 * i, true);
    else if (D.dtype === "bf16") out[i] = new Float32Array(new Uint32Array([view.getUint16(2 * i, true) << 16]).buffer)[0];
    else out[i] = half(view.getUint16(2 * i, true));
  }
  return out;
}
const W = Object.fromEntries(Object.entries(D.weights).map(([k, t]) => [k, decode(t)]));
const H = D.hidden, E = D.embedding, V = D.vocab.length, G = D.blocks * H;
const ids = new Map(D.vocab.map((c, i) => [c, i]));

function affine(w, b, x, rows, cols) {  // w (rows, cols) x + b
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = b[r];
    for (let c = 0, o = r * cols; c < cols; c++) s += w[o + c] * x[c];
    y[r] = s;
  }
  return y;
}
function freshState() {
  return Array.from({length: D.layers}, () => D.state_parts.map(() => new Float64Array(H)));
}
function step(state, id) {  // -> logits (V,); the state advances in place
  let x = W["embed.weight"].subarray(id * E, (id + 1) * E), width = E;
  for (let k = 0; k < D.layers; k++) {
    const gi = affine(W[`rnn.weight_ih_l${k}`], W[`rnn.bias_ih_l${k}`], x, G, width);
    const whh = W[`rnn.weight_hh_l${k}`];  // none for a kind whose gates read the input alone
    const gh = whh ? affine(whh, W[`rnn.bias_hh_l${k}`], state[k][0], G, H) : null;
    state[k] = cellStep(gi, gh, state[k], H);
    x = state[k][0]; width = H;
  }
  return affine(W["head.weight"], W["head.bias"], x, V, H);
}
function rng(seed) {  // mulberry32: a small, seeded generator
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function pick(logits, temperature, topk, random) {
  let best = 0;
  for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;  // the first of equals, as torch.argmax
  if (temperature === 0) return best;
  let order = Array.from(logits.keys());
  if (topk > 0 && topk < V) order = order.sort((a, b) => logits[b] - logits[a]).slice(0, topk);
  const w = order.map(i => Math.exp((logits[i] - logits[best]) / temperature));
  let u = random() * w.reduce((a, b) => a + b, 0);
  for (let j = 0; j < order.length; j++) if ((u -= w[j]) <= 0) return order[j];
  return order[order.length - 1];
}
// A run: read the prime (characters the model never saw are skipped, as
// `--unknown skip`), then yield one generated character at a time.
function* generate(prime, temperature, topk, seed, length) {
  const known = [...prime].filter(c => ids.has(c));
  const start = known.length ? known : [D.vocab.includes("\n") ? "\n" : D.vocab[0]];
  const state = freshState(), random = rng(seed);
  let logits;
  for (const c of start) logits = step(state, ids.get(c));
  for (let t = 0; t < length; t++) {
    const id = pick(logits, temperature, topk, random);
    yield D.vocab[id];
    logits = step(state, id);
  }
}
function skipped(prime) {
  const unknown = [...new Set([...prime].filter(c => !ids.has(c)))];
  return unknown.length ? `skipped ${unknown.length} character(s) the model never saw: ${unknown.map(c => JSON.stringify(c)).join(" ")}` : "";
}

$("model").textContent = `${D.layers}x${H} ${D.kind}, ${V} characters`;
let running = null;
function finish() { running = null; $("go").disabled = false; $("stop").disabled = true; }
$("go").addEventListener("click", () => {
  const prime = $("prime").value, out = $("out");
  const num = (id, lo) => Math.max(lo, Number($(id).value) || 0);
  $("note").textContent = skipped(prime);
  out.textContent = prime;
  const run = running = generate(prime, num("temperature", 0), Math.floor(num("topk", 0)), Math.floor(num("seed", 0)),
                                 Math.floor(num("length", 0)));
  $("go").disabled = true; $("stop").disabled = false;
  const tick = () => {  // about a frame's worth of characters, then let the page draw them
    if (running !== run) return;
    const until = performance.now() + 30;
    let chunk = "";
    for (let r = run.next(); ; r = run.next()) {
      if (r.done) { out.append(chunk); return finish(); }
      chunk += r.value;
      if (performance.now() > until) break;
    }
    out.append(chunk);
    setTimeout(tick, 0);
  };
  tick();
});
$("stop").addEventListener("click", finish);

if (location.hash.startsWith("#selftest")) {  // used by the tests: the prime's logits, argmax from it, a sampled run
  const q = new URLSearchParams(location.hash.slice("#selftest".length + 1));
  const prime = q.get("prime") || "", state = freshState();
  const logits = [...prime].filter(c => ids.has(c)).map(c => Array.from(step(state, ids.get(c))));
  const text = [...generate(prime, 0, 0, 0, Number(q.get("length") || 300))].join("");
  // Then the page's own path, as a user drives it: the form, sampling, streaming.
  $("prime").value = prime; $("temperature").value = "0.9"; $("topk").value = "5"; $("length").value = "80";
  $("go").click();
  const report = () => {
    if (running) return setTimeout(report, 10);
    const pre = document.createElement("pre");
    pre.id = "selftest";
    pre.textContent = JSON.stringify({errors, logits, text, note: $("note").textContent, streamed: $("out").textContent});
    document.body.appendChild(pre);
  };
  report();
}
