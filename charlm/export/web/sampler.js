// Samples from an exported charlm model (model.onnx, vocab.json, config.json) with
// onnxruntime-web, as `charlm sample` does: the prime is fed one id at a time from the zero
// state, then each drawn id is fed back. Temperature 0 is greedy (argmax); top-k is chosen on
// the raw scores, then temperature, then top-p (nucleus), as charlm/generation/sampling.py.
import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";

ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
ort.env.wasm.numThreads = 1;     // no SharedArrayBuffer, so no cross-origin isolation needed

const $ = (id) => document.getElementById(id);
const FIELDS = ["prime", "length", "temperature", "top_k", "top_p", "stop"];

async function loadJSON(name) {
  const response = await fetch(name);
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
  return response.json();
}

// The id of each logit kept by top-k, temperature and top-p, drawn with `random` in [0, 1).
export function pickNext(logits, temperature, topK, topP, random = Math.random) {
  const n = logits.length;
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
  if (temperature === 0) return best;
  let floor = -Infinity;
  if (topK && topK < n) floor = Array.from(logits).sort((a, b) => b - a)[topK - 1];
  const probs = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = logits[i] < floor ? 0 : Math.exp((logits[i] - logits[best]) / temperature);
    total += probs[i];
  }
  for (let i = 0; i < n; i++) probs[i] /= total;
  if (topP !== null && topP < 1) {
    const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a]);
    let before = 0;
    order.forEach((id, rank) => {
      const p = probs[id];
      if (rank > 0 && before >= topP) probs[id] = 0;
      before += p;
    });
  }
  total = probs.reduce((a, b) => a + b, 0);
  let u = random() * total;
  for (let i = 0; i < n; i++) { u -= probs[i]; if (u < 0 && probs[i] > 0) return i; }
  return best;
}

class Model {
  static async open() {
    const [config, vocab] = await Promise.all([loadJSON("config.json"), loadJSON("vocab.json")]);
    const session = await ort.InferenceSession.create(config.graphs.fp32,
                                                      { executionProviders: ["wasm"] });
    return new Model(session, config, vocab);
  }

  constructor(session, config, vocab) {
    Object.assign(this, { session, config, vocab });
    this.index = new Map(vocab.tokens.map((token, id) => [token, id]));
    this.bytes = vocab.unit === "byte";
  }

  zeroState() {
    const { num_layers: L, hidden_size: H } = this.config;
    return Object.fromEntries(this.config.state.map(
      (name) => [name, new ort.Tensor("float32", new Float32Array(L * H), [L, 1, H])]));
  }

  async step(id, state) {
    const feeds = { ids: new ort.Tensor("int64", BigInt64Array.from([BigInt(id)]), [1]), ...state };
    const out = await this.session.run(feeds);
    const next = Object.fromEntries(this.config.state.map((name) => [name, out[`${name}_out`]]));
    return [out.logits.data, next];
  }

  encode(text) {        // ids of the prime, or throws naming the characters the model never saw
    const units = this.bytes ? Array.from(new TextEncoder().encode(text)) : Array.from(text);
    const unknown = [...new Set(units.filter((u) => !this.index.has(u)))];
    if (unknown.length) throw new Error(`the prime has characters the model never saw: ${JSON.stringify(unknown.join(""))}`);
    return units.map((u) => this.index.get(u));
  }
}

// The page's settings: the form's values, overridden by the URL's query string.
function readSettings() {
  const query = new URLSearchParams(location.search);
  for (const name of FIELDS) if (query.has(name)) $(name).value = query.get(name);
  const number = (name) => ($(name).value === "" ? null : Number($(name).value));
  return { prime: $("prime").value, length: number("length") ?? 500,
           temperature: number("temperature") ?? 1, topK: number("top_k"), topP: number("top_p"),
           stop: $("stop").value, run: query.get("run") === "1" };
}

// Writes the prime and then the drawn text into #output as it comes, like `charlm sample`:
// the prime (a newline when empty, fed but not shown), the continuation cut after the stop
// string, and a final newline unless the text already ends with one.
async function run(model) {
  const s = readSettings();
  const output = $("output");
  output.textContent = "";
  delete output.dataset.done;
  $("run").disabled = true;
  try {
    const fed = s.prime === "" ? (model.index.has("\n") ? "\n" : model.vocab.tokens[0])
                               : s.prime.replace(/\r\n?/g, "\n");
    const decoder = new TextDecoder();
    const show = (id) => (model.bytes ? decoder.decode(Uint8Array.of(model.vocab.tokens[id]),
                                                       { stream: true }) : model.vocab.tokens[id]);
    let state = model.zeroState(), logits = null;
    for (const id of model.encode(fed)) [logits, state] = await model.step(id, state);
    let text = s.prime === "" ? "" : fed, drawn = "";
    output.textContent = text;
    for (let i = 0; i < s.length; i++) {
      const id = pickNext(logits, s.temperature, s.topK, s.topP);
      const piece = show(id);
      drawn += piece; text += piece;
      output.textContent = text;
      if (s.stop && drawn.includes(s.stop)) break;
      if (i + 1 < s.length) [logits, state] = await model.step(id, state);
      if (i % 16 === 15) await new Promise((resolve) => setTimeout(resolve));   // let it paint
    }
    if (model.bytes) text += decoder.decode();
    output.textContent = text.endsWith("\n") ? text : text + "\n";
    $("status").textContent = `${drawn.length} characters drawn`;
  } catch (error) {
    $("status").textContent = `Error: ${error.message}`;
  } finally {
    output.dataset.done = "1";
    document.title = "done";
    $("run").disabled = false;
  }
}

const model = await Model.open().catch((error) => {
  $("model").textContent = `Error: ${error.message}`;
  $("output").dataset.done = "1";
  document.title = "done";
  throw error;
});
const c = model.config;
$("model").textContent = `${c.cell} ${c.num_layers} x ${c.hidden_size}, ${c.vocab_size} ${c.unit}s` +
  (c.val_bpc == null ? "" : `, val ${c.val_bpc.toFixed(3)} bpc`);
const defaults = c.sample || {};
for (const [field, key] of [["length", "length"], ["temperature", "temperature"],
                            ["top_k", "top_k"], ["top_p", "top_p"]])
  if (defaults[key] != null) $(field).value = defaults[key];
$("run").disabled = false;
$("settings").addEventListener("submit", (event) => { event.preventDefault(); run(model); });
if (readSettings().run) run(model);
