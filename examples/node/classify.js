// Embedding a lenetc model in Node.js with onnxruntime-node: load model.onnx, read how to feed it
// from its own metadata, run the golden inputs, print each sample's predicted class.
//
//   npm install onnxruntime-node          (in a lenetc checkout: make deps)
//   node examples/node/classify.js build/lenet5
//
// The same program runs on onnxruntime-web's wasm backend: LENETC_ORT=onnxruntime-web.
// lenetc verify drives it too (rows onnxruntime-node and onnxruntime-web[node]) with
// `--cases DIR`: raw float32 inputs listed in DIR/cases.txt, outputs written beside them.
"use strict";
const fs = require("fs");
const path = require("path");
const ortPackage = process.env.LENETC_ORT || "onnxruntime-node";
const ort = require(ortPackage);
const onnxProto = require("../js/onnx_proto.js");

async function main() {
  const [build, flag, casesDir, modelFlag, modelFile] = process.argv.slice(2);
  if (!build) throw new Error("usage: node classify.js BUILD_DIR [--cases DIR [--model FILE]]");
  if (ortPackage === "onnxruntime-web") ort.env.wasm.numThreads = 1; // no worker threads needed

  const modelPath = modelFlag === "--model" ? modelFile : path.join(build, "model.onnx");
  const modelBytes = fs.readFileSync(modelPath);
  const session = await ort.InferenceSession.create(modelBytes);
  if (flag === "--cases") return runCases(session, casesDir);

  // What the model says about itself (see the README's "What the ONNX file says about itself").
  const meta = onnxProto.metadata(modelBytes);
  const labels = JSON.parse(meta.class_labels);
  console.log(`${meta.spec_name}: input ${meta.input_name} ${meta.input_shape} (${meta.input_layout}),`
    + ` normalized with mean ${meta.normalization_mean} std ${meta.normalization_std}`);

  // The golden inputs are already normalized. Raw data in meta.input_range would first become
  // (raw - mean[c]) / std[c], channel by channel.
  const input = onnxProto.tensor(fs.readFileSync(path.join(build, "test_data_set_0", "input_0.pb")));
  const expected = onnxProto.tensor(fs.readFileSync(path.join(build, "test_data_set_0", "output_0.pb")));
  const x = new ort.Tensor("float32", input.data, input.dims);
  const logits = (await session.run({ [meta.input_name]: x }))[meta.output_name];

  const classes = logits.dims[1];
  let maxDiff = 0;
  for (let i = 0; i < logits.dims[0]; i++) {
    const row = logits.data.subarray(i * classes, (i + 1) * classes);
    const best = row.indexOf(Math.max(...row));
    console.log(`sample ${i}: ${labels[best]}`);
    for (let j = 0; j < classes; j++) {
      maxDiff = Math.max(maxDiff, Math.abs(row[j] - expected.data[i * classes + j]));
    }
  }
  console.log(`max |logits - output_0.pb| = ${maxDiff.toExponential(2)}`);
}

// verify's protocol: each line of cases.txt is "NAME d0 d1 ..."; NAME.in holds the float32
// input; every output k goes to NAME.out<k> (float32) with its dims in NAME.out<k>.shape.
async function runCases(session, dir) {
  const lines = fs.readFileSync(path.join(dir, "cases.txt"), "utf8").trim().split("\n");
  for (const line of lines) {
    const [name, ...dims] = line.trim().split(/\s+/);
    const raw = fs.readFileSync(path.join(dir, `${name}.in`));
    const data = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    const x = new ort.Tensor("float32", data, dims.map(Number));
    const out = await session.run({ [session.inputNames[0]]: x });
    session.outputNames.forEach((outName, k) => {
      const y = out[outName];
      fs.writeFileSync(path.join(dir, `${name}.out${k}`), Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength));
      fs.writeFileSync(path.join(dir, `${name}.out${k}.shape`), y.dims.join(" "));
    });
  }
}

main().catch((err) => {
  console.error(String(err && err.message ? err.message : err).split("\n")[0]);
  process.exit(1);
});
