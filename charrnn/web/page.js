// The generator page: a form over the model (model.js, placed before this
// script). Text only ever reaches the page as textContent.
const errors = [];
window.addEventListener("error", e => errors.push(String(e.message)));
document.addEventListener("securitypolicyviolation", e => errors.push("CSP: " + e.violatedDirective));
const $ = id => document.getElementById(id);
const model = charrnnModel(JSON.parse($("data").textContent));

function skipped(prime) {
  const unknown = model.unknownChars(prime);
  return unknown.length ? `skipped ${unknown.length} character(s) the model never saw: ${unknown.map(c => JSON.stringify(c)).join(" ")}` : "";
}

const {kind, layers, hidden} = model.config;
$("model").textContent = `${layers}x${hidden} ${kind}, ${model.chars.length} characters`;
let running = null;
function finish() { running = null; $("go").disabled = false; $("stop").disabled = true; }
$("go").addEventListener("click", async () => {
  const prime = $("prime").value, out = $("out");
  const num = (id, lo) => Math.max(lo, Number($(id).value) || 0);
  $("note").textContent = skipped(prime);
  out.textContent = prime;
  const run = running = model.generate({
    prime, unknown: "skip", temperature: num("temperature", 0), topK: Math.floor(num("topk", 0)),
    seed: Math.floor(num("seed", 0)), length: Math.floor(num("length", 0)),
  });
  $("go").disabled = true; $("stop").disabled = false;
  let chunk = "", drawn = performance.now();
  for await (const c of run) {
    if (running !== run) return;  // stopped, or a newer run began
    chunk += c;
    if (performance.now() - drawn > 30) { out.append(chunk); chunk = ""; drawn = performance.now(); }
  }
  out.append(chunk);
  finish();
});
$("stop").addEventListener("click", finish);

if (location.hash.startsWith("#selftest")) {  // used by the tests: the prime's logits, argmax from it, a sampled run
  const q = new URLSearchParams(location.hash.slice("#selftest".length + 1));
  const prime = q.get("prime") || "";
  // Each prime position's logits, the prime read from the start of a line (as Model.feed reads it).
  const logits = [];
  let state = model.start();
  for (const c of [...prime].filter(c => !model.unknownChars(c).length)) {
    state = model.feed(c, state);
    logits.push(Array.from(state.logits));
  }
  const text = model.sample({prime, unknown: "skip", temperature: 0, length: Number(q.get("length") || 300)});
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
