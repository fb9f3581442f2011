// ONNX Runtime side of benchmarks/compare (driven by compare.py over stdin/stdout).
//
//   node ort_worker.mjs CROP.bgr PARAMS.json MODEL_B1.onnx [MODEL_B8.onnx]
//
// One JSON request per stdin line, one JSON reply per stdout line:
//   {"cmd": "time", "threads": N, "batch": B, "iters": K, "warmup": W}
//        -> {"times_ms": [...]}  wall time of each of K calls after W untimed ones
//   {"cmd": "dump", "threads": N, "out": "FILE.bin"}
//        -> {"ok": true}  batch-1 outputs, each as little-endian raw data, in the order
//           of compare_model.OUTPUT_NAMES (uv int64)
//   {"cmd": "info"} -> {"version": ..., "node": ...}
//
// Sessions: CPU execution provider, graphOptimizationLevel 'all', executionMode
// 'sequential', intraOpNumThreads N, interOpNumThreads 1; one per (threads, batch),
// created on first use (creation is not timed). A timed call is: wrap the uint8 crop
// bytes and the 12 float params in ort.Tensors (no copy) + await session.run() (which
// includes copying the outputs into JS typed arrays).
import fs from "node:fs";
import readline from "node:readline";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const ort = require("onnxruntime-node");
const ortVersion = require("onnxruntime-node/package.json").version;

const [cropPath, paramsPath, modelB1, modelB8] = process.argv.slice(2);
const crop = new Uint8Array(fs.readFileSync(cropPath));
const p = JSON.parse(fs.readFileSync(paramsPath, "utf8"));
const params = Float32Array.from([...p.cam, ...p.bbox, ...p.root, ...p.scale]);
const OUTPUTS = ["heatmaps_0", "heatmaps_1", "mesh_raw", "depths", "uv", "pose_xyz", "mesh_xyz"];

const sessions = new Map();
async function session(threads, batch) {
  const key = `${threads}/${batch}`;
  if (!sessions.has(key)) {
    const model = batch === 1 ? modelB1 : batch === 8 ? modelB8 : null;
    if (!model) throw new Error(`no model for batch ${batch}`);
    sessions.set(key, await ort.InferenceSession.create(model, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
    }));
  }
  return sessions.get(key);
}

const batchInputs = new Map();
function inputs(batch) {
  if (!batchInputs.has(batch)) {
    const c = new Uint8Array(crop.length * batch);
    const q = new Float32Array(params.length * batch);
    for (let i = 0; i < batch; ++i) {
      c.set(crop, i * crop.length);
      q.set(params, i * params.length);
    }
    batchInputs.set(batch, [c, q]);
  }
  return batchInputs.get(batch);
}

async function runOnce(s, batch) {
  const [c, q] = inputs(batch);
  return s.run({
    crop: new ort.Tensor("uint8", c, [batch, 256, 256, 3]),
    params: new ort.Tensor("float32", q, [batch, 12]),
  });
}

async function handle(req) {
  if (req.cmd === "info") return { version: ortVersion, node: process.version };
  if (req.cmd === "time") {
    const s = await session(req.threads, req.batch);
    for (let i = 0; i < (req.warmup ?? 1); ++i) await runOnce(s, req.batch);
    const times = [];
    for (let i = 0; i < req.iters; ++i) {
      const t0 = process.hrtime.bigint();
      await runOnce(s, req.batch);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return { times_ms: times };
  }
  if (req.cmd === "dump") {
    const s = await session(req.threads, 1);
    const out = await runOnce(s, 1);
    const parts = OUTPUTS.map((name) => {
      const d = out[name].data;
      return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    });
    fs.writeFileSync(req.out, Buffer.concat(parts));
    return { ok: true, types: OUTPUTS.map((n) => out[n].type), dims: OUTPUTS.map((n) => out[n].dims) };
  }
  throw new Error(`unknown command ${JSON.stringify(req.cmd)}`);
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
for await (const line of rl) {
  if (!line.trim()) continue;
  let reply;
  try {
    reply = await handle(JSON.parse(line));
  } catch (e) {
    reply = { error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
