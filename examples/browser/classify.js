// The page's program: load model.onnx with onnxruntime-web, read its metadata, run the golden
// inputs (test_data_set_0/input_0.pb) and print each sample's predicted class into <pre id=out>.
"use strict";

// onnxruntime-web fetches its .wasm (and the .mjs that loads it) from wasmPaths: give it an
// absolute URL. One thread: no worker threads, so no cross-origin isolation headers needed.
ort.env.wasm.wasmPaths = new URL("ort/", location.href).href;
ort.env.wasm.numThreads = 1;

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function loadModel(url) {
  const bytes = await fetchBytes(url);
  return { session: await ort.InferenceSession.create(bytes), meta: onnxProto.metadata(bytes) };
}

async function classifyGolden(build) {
  const out = document.getElementById("out");
  const { session, meta } = await loadModel(`${build}model.onnx`);
  const labels = JSON.parse(meta.class_labels);
  const lines = [`${meta.spec_name}: input ${meta.input_name} ${meta.input_shape}, normalized with`
    + ` mean ${meta.normalization_mean} std ${meta.normalization_std}`];
  // Already normalized; raw pixels in meta.input_range would first become (raw - mean) / std.
  const input = onnxProto.tensor(await fetchBytes(`${build}test_data_set_0/input_0.pb`));
  const expected = onnxProto.tensor(await fetchBytes(`${build}test_data_set_0/output_0.pb`));
  const x = new ort.Tensor("float32", input.data, input.dims);
  const logits = (await session.run({ [meta.input_name]: x }))[meta.output_name];
  const classes = logits.dims[1];
  let maxDiff = 0;
  for (let i = 0; i < logits.dims[0]; i++) {
    const row = logits.data.subarray(i * classes, (i + 1) * classes);
    lines.push(`sample ${i}: ${labels[row.indexOf(Math.max(...row))]}`);
    row.forEach((v, j) => { maxDiff = Math.max(maxDiff, Math.abs(v - expected.data[i * classes + j])); });
  }
  lines.push(`max |logits - output_0.pb| = ${maxDiff.toExponential(2)}`);
  out.textContent = lines.join("\n");
}

// For run_headless.js --cases (lenetc verify): run each case's float32 input file; return every
// output as dims and base64 float32 bytes.
async function runCases(modelUrl, casesUrl, cases) {
  const { session } = await loadModel(modelUrl);
  const results = [];
  for (const { name, dims } of cases) {
    const raw = await fetchBytes(`${casesUrl}${name}.in`);
    const x = new ort.Tensor("float32", new Float32Array(raw.buffer), dims);
    const out = await session.run({ [session.inputNames[0]]: x });
    results.push({ name, outputs: session.outputNames.map((n) => ({ dims: out[n].dims, data: base64(out[n].data) })) });
  }
  return results;
}

function base64(floats) {
  const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

window.lenetc = { runCases };
const build = new URLSearchParams(location.search).get("build");
if (build) {
  classifyGolden(build).then(
    () => { window.lenetcDone = true; },
    (err) => { window.lenetcError = String(err && err.message ? err.message : err); },
  );
}
