// charrnn's model in plain JavaScript, shared by the exported page and the
// ES module (`charrnn export --module`). It steps one character at a time
// exactly as `charrnn sample` does (the embedding, each layer's cell step on
// W_ih x + b_ih and W_hh h + b_hh, the head), with float64 arithmetic on the
// embedded weights. Nothing here touches a page: it runs wherever
// JavaScript does.
function charrnnModel(D) {
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
  // {shape, dtype, data[, scale]} (little-endian bytes) -> Float32Array. An
  // int8 tensor holds one fp32 scale per row: w[r, c] = q[r, c] * scale[r].
  function decode(t) {
    const bytes = bytesOf(t.data), view = new DataView(bytes.buffer), n = t.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n), dtype = t.dtype || D.dtype;
    if (dtype === "int8") {
      const scale = new Float32Array(bytesOf(t.scale).buffer), cols = n / t.shape[0];
      for (let i = 0; i < n; i++) out[i] = view.getInt8(i) * scale[Math.floor(i / cols)];
      return out;
    }
    for (let i = 0; i < n; i++) {
      if (dtype === "fp32") out[i] = view.getFloat32(4 * i, true);
      else if (dtype === "bf16") out[i] = new Float32Array(new Uint32Array([view.getUint16(2 * i, true) << 16]).buffer)[0];
      else out[i] = half(view.getUint16(2 * i, true));
    }
    return out;
  }
  const W = Object.fromEntries(Object.entries(D.weights).map(([k, t]) => [k, decode(t)]));
  const H = D.hidden, E = D.embedding, V = D.vocab.length, G = D.blocks * H;
  const ids = new Map(D.vocab.map((c, i) => [c, i]));
  // A model of documents reads each from its end marker (U+0000) and ends
  // it by drawing the marker, as `charrnn sample` does.
  const docEnd = "\u0000", documents = D.vocab.includes(docEnd);
  const lineStart = documents ? docEnd : D.vocab.includes("\n") ? "\n" : D.vocab[0];  // what a text is read after

  function affine(w, b, x, rows, cols) {  // w (rows, cols) x + b
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = b[r];
      for (let c = 0, o = r * cols; c < cols; c++) s += w[o + c] * x[c];
      y[r] = s;
    }
    return y;
  }
  function step(parts, id) {  // -> [parts after reading id, the next character's logits]; parts is left as it was
    let x = W["embed.weight"].subarray(id * E, (id + 1) * E), width = E;
    const next = [];
    for (let k = 0; k < D.layers; k++) {
      const gi = affine(W[`rnn.weight_ih_l${k}`], W[`rnn.bias_ih_l${k}`], x, G, width);
      const whh = W[`rnn.weight_hh_l${k}`];  // none for a kind whose gates read the input alone
      const gh = whh ? affine(whh, W[`rnn.bias_hh_l${k}`], parts[k][0], G, H) : null;
      next.push(cellStep(gi, gh, parts[k], H));
      x = next[k][0]; width = H;
    }
    return [next, affine(W["head.weight"], W["head.bias"], x, V, H)];
  }
  function zero() {
    return Array.from({length: D.layers}, () => D.state_parts.map(() => new Float64Array(H)));
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
  function softmax(logits, scale = 1) {
    let top = -Infinity;
    for (const v of logits) top = Math.max(top, v);
    const p = Array.from(logits, v => Math.exp((v - top) * scale)), sum = p.reduce((a, b) => a + b, 0);
    return p.map(v => v / sum);
  }
  // As `charrnn sample`: argmax at temperature 0; else the tempered
  // distribution, cut to the top k, then to the fewest most likely
  // characters whose probability reaches top_p, and drawn from.
  function pick(logits, o, random) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;  // the first of equals, as torch.argmax
    if (o.temperature === 0) return best;
    let order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
    if (o.topK && o.topK < V) order = order.filter(i => logits[i] >= logits[order[o.topK - 1]]);
    let w = softmax(order.map(i => logits[i]), 1 / o.temperature);
    if (o.topP < 1) {
      let before = 0, keep = 0;
      while (keep < w.length && before < o.topP) before += w[keep++];
      order = order.slice(0, keep); w = w.slice(0, keep);
    }
    let u = random() * w.reduce((a, b) => a + b, 0);
    for (let j = 0; j < order.length; j++) if ((u -= w[j]) <= 0) return order[j];
    return order[order.length - 1];
  }
  const MIN_TEMPERATURE = 1e-4;  // as charrnn sample: 1 / T would overflow
  const CONTROLS = {prime: "", length: 500, temperature: 1, topK: 0, topP: 1, seed: null, unknown: "error"};
  function controls(given) {
    const wrong = Object.keys(given).filter(k => !(k in CONTROLS));
    if (wrong.length) throw new Error(`unknown sampling control ${JSON.stringify(wrong[0])}: choose from ${Object.keys(CONTROLS).join(", ")}`);
    const o = {...CONTROLS, ...given};
    const whole = (name, lo) => {
      if (!Number.isInteger(o[name]) || o[name] < lo) throw new Error(`${name} must be a whole number >= ${lo}, not ${o[name]}`);
    };
    whole("length", 0); whole("topK", 0);
    if (!(o.temperature >= 0 && Number.isFinite(o.temperature))) throw new Error(`temperature must be a finite number >= 0, not ${o.temperature}`);
    if (o.temperature > 0 && o.temperature < MIN_TEMPERATURE) throw new Error(`temperature below ${MIN_TEMPERATURE} is argmax in all but name: use 0`);
    if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`topP must be in (0, 1], not ${o.topP}`);
    if (o.seed === null) o.seed = Math.floor(Math.random() * 2 ** 32);
    whole("seed", 0);
    if (o.unknown !== "error" && o.unknown !== "skip") throw new Error(`unknown must be "error" or "skip", not ${JSON.stringify(o.unknown)}`);
    return o;
  }
  function known(text, unknown) {  // the characters the model has seen; the others refused, or skipped
    const missing = [...new Set([...text].filter(c => !ids.has(c)))];
    if (missing.length && unknown !== "skip") {
      throw new Error(`the model has never seen ${missing.map(c => JSON.stringify(c)).join(" ")}: pass unknown: "skip" to leave them out`);
    }
    return [...text].filter(c => ids.has(c));
  }

  // Where the model is after reading some text. Never changed: feeding it
  // more gives a new State, so one state can be continued several ways.
  class State {
    constructor(parts, logits, text) {
      this.parts = parts; this.logits = logits; this.text = text;
      Object.freeze(this);
    }
  }

  class Model {
    get config() { return {kind: D.kind, layers: D.layers, hidden: H, embedding: E, dtype: D.dtype, documents: D.documents || ""}; }
    get chars() { return D.vocab.join(""); }
    unknownChars(text) { return [...new Set([...text].filter(c => !ids.has(c)))]; }
    // The state at the start of a line, before any text (ml5's reset).
    start() {
      const [parts, logits] = step(zero(), ids.get(lineStart));
      return new State(parts, logits, "");
    }
    feed(text, state = null, {unknown = "error"} = {}) {
      let {parts, logits, text: read} = state || this.start();
      for (const c of known(text, unknown)) {
        [parts, logits] = step(parts, ids.get(c));
        read += c;
      }
      return new State(parts, logits, read);
    }
    // The next character's distribution: a Map from character to probability, in id order.
    nextProbs(state = null, temperature = 1) {
      if (!(temperature >= MIN_TEMPERATURE && Number.isFinite(temperature))) {
        throw new Error(`temperature must be a finite number >= ${MIN_TEMPERATURE}, not ${temperature}`);
      }
      const p = softmax((state || this.start()).logits, 1 / temperature);
      return new Map(D.vocab.map((c, i) => [c, p[i]]));
    }
    // The characters that follow the prime, one at a time (the prime not
    // included). The controls and the prime are checked before this returns.
    characters(options = {}) {
      const o = controls(options), random = rng(o.seed), prime = known(o.prime, o.unknown);
      let parts = zero(), logits;  // the prime is read from a zero state; no prime: a newline, as if a line began
      const first = documents ? [lineStart, ...prime] : prime.length ? prime : [lineStart];
      for (const c of first) [parts, logits] = step(parts, ids.get(c));
      return (function* () {
        for (let t = 0; t < o.length; t++) {
          const id = pick(logits, o, random);
          if (documents && D.vocab[id] === docEnd) return;  // the document's end
          yield D.vocab[id];
          [parts, logits] = step(parts, id);
        }
      })();
    }
    sample(options = {}) { return [...this.characters(options)].join(""); }
    // As characters(), as an async iterator that lets the page draw (and
    // other work run) about every frame.
    generate(options = {}) {
      const chars = this.characters(options);
      return (async function* () {
        let until = performance.now() + 30;
        for (const c of chars) {
          yield c;
          if (performance.now() > until) {
            await new Promise(done => setTimeout(done, 0));
            until = performance.now() + 30;
          }
        }
      })();
    }
  }
  return new Model();
}
