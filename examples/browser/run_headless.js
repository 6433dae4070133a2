// Runs index.html in a real headless Chromium (playwright-core), serving it, onnxruntime-web's
// dist/ and a build folder from a server bound to 127.0.0.1 only: nothing leaves the machine.
//
//   node examples/browser/run_headless.js build/lenet5            the page's output, printed
//   node examples/browser/run_headless.js BUILD --cases DIR [--model FILE]   lenetc verify's cases
//
// Chromium: CHROMIUM=/path, default /usr/bin/chromium. Paths resolve through require(), so
// NODE_PATH may point at the node_modules holding onnxruntime-web and playwright-core.
"use strict";
const fs = require("fs");
const http = require("http");
const path = require("path");
const { chromium } = require("playwright-core");

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm" };

function serve(routes) {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const prefix = Object.keys(routes).find((p) => url.startsWith(p));
    const file = prefix && path.join(routes[prefix], url.slice(prefix.length));
    if (!file || !file.startsWith(routes[prefix]) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function main() {
  const [build, flag, casesDir, modelFlag, modelFile] = process.argv.slice(2);
  const ortDist = path.dirname(require.resolve("onnxruntime-web")) // its dist/;
  const routes = {
    "/ort/": ortDist,
    "/onnx_proto.js": path.join(__dirname, "..", "js", "onnx_proto.js"),
    "/build/": path.resolve(build),
    "/cases/": path.resolve(casesDir || build),
    "/model/": path.dirname(path.resolve(modelFile || path.join(build, "model.onnx"))),
    "/": __dirname,
  };
  const server = await serve(routes);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"], // lenetc may run as root (containers, CI), where the sandbox refuses
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (err) => errors.push(err.message));
    if (flag !== "--cases") {
      await page.goto(`${origin}/index.html?build=/build/`);
      await page.waitForFunction(() => window.lenetcDone || window.lenetcError, null, { timeout: 60000 });
      const failed = await page.evaluate(() => window.lenetcError);
      if (failed || errors.length) throw new Error(failed || errors[0]);
      console.log(await page.textContent("#out"));
      return;
    }
    await page.goto(`${origin}/index.html`);
    const cases = fs.readFileSync(path.join(casesDir, "cases.txt"), "utf8").trim().split("\n").map((line) => {
      const [name, ...dims] = line.trim().split(/\s+/);
      return { name, dims: dims.map(Number) };
    });
    const model = `/model/${path.basename(modelFlag === "--model" ? modelFile : "model.onnx")}`;
    const results = await page.evaluate(([m, c]) => window.lenetc.runCases(m, "/cases/", c), [model, cases]);
    for (const { name, outputs } of results) {
      outputs.forEach(({ dims, data }, k) => {
        fs.writeFileSync(path.join(casesDir, `${name}.out${k}`), Buffer.from(data, "base64"));
        fs.writeFileSync(path.join(casesDir, `${name}.out${k}.shape`), dims.join(" "));
      });
    }
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((err) => {
  console.error(String(err && err.message ? err.message : err).split("\n")[0]);
  process.exit(1);
});
