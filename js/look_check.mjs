// Drives the system's headless Chromium (playwright-core, no downloaded browser) over lenetc's
// report pages for tests/test_look_browser.py: one browser launch, a list of pages; prints one
// JSON object. Usage: node js/look_check.mjs JOB.json  (see the test for the job's fields).
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const browser = await chromium.launch({
  executablePath: job.chromium || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const results = [];
try {
  for (const p of job.pages) {
    const context = await browser.newContext({ viewport: p.viewport || { width: 1280, height: 900 } });
    const page = await context.newPage();
    const console_errors = [], requests = [];
    page.on("console", (m) => { if (m.type() === "error") console_errors.push(m.text()); });
    page.on("pageerror", (e) => console_errors.push("pageerror: " + e.message));
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(p.url, { waitUntil: "load", timeout: 30000 });
    const r = { url: p.url };
    r.layers = await page.$$eval(".lenetc-net .layer", (els) => els.map((e) => ({
      name: e.dataset.layer, type: e.dataset.type, shape: e.dataset.shape,
      tag: e.dataset.tag || null, role: e.classList.contains("block") ? "block" : "op",
      text: e.querySelector(".tag") ? e.querySelector(".tag").textContent : e.textContent,
    })));
    r.parity = await page.$$eval("#parity-table tbody tr", (rows) => rows.map((tr) => ({
      runtime: tr.dataset.runtime, artifact: tr.dataset.artifact, output: tr.dataset.output,
      status: tr.dataset.status,
      cells: Object.fromEntries([...tr.querySelectorAll("td[data-key]")].map(
        (td) => [td.dataset.key, { value: JSON.parse(td.dataset.value), text: td.textContent }])),
      result: tr.lastElementChild.textContent,
    })));
    if (p.panel) {
      r.ready = await page.evaluate(() => window.lenetcPanel.ready);
      r.status = await page.textContent("#status");
      r.metadata = await page.evaluate(() => window.lenetcPanel.metadata());
      if (r.ready && p.pixels) {
        r.probabilities = await page.evaluate(async ({ pixels }) => {
          const pad = document.getElementById("pad");
          const ctx = pad.getContext("2d");
          const img = ctx.createImageData(pad.width, pad.height);
          pixels.forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
          ctx.putImageData(img, 0, 0);
          return window.lenetcPanel.classify();
        }, { pixels: p.pixels });
        r.bars = await page.$$eval("#probs li", (lis) => lis.map((li) => Number(li.dataset.p)));
        r.top = await page.getAttribute("#top", "data-index");
      }
      if (r.ready && p.mouse) {  // a stroke with the mouse, then Clear from the keyboard
        await page.evaluate(() => window.lenetcPanel.clear());
        const box = await page.locator("#pad").boundingBox();
        await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.15);
        await page.mouse.down();
        await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.85, { steps: 12 });
        await page.mouse.up();
        await page.waitForFunction(() => document.querySelectorAll("#probs li").length > 0);
        r.mouse_bars = await page.$$eval("#probs li", (lis) => lis.map((li) => Number(li.dataset.p)));
        r.mouse_ink = await page.evaluate(() => {
          const pad = document.getElementById("pad");
          const d = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
          let ink = 0;
          for (let i = 0; i < d.length; i += 4) ink += d[i] > 0 ? 1 : 0;
          return ink;
        });
        await page.focus("#clear");
        await page.keyboard.press("Enter");
        r.after_clear = await page.evaluate(() => ({
          bars: document.querySelectorAll("#probs li").length,
          top: document.getElementById("top").textContent,
          ink: [...document.getElementById("pad").getContext("2d")
            .getImageData(0, 0, 32, 32).data].filter((v, i) => i % 4 === 0 && v > 0).length,
        }));
      }
    }
    if (p.screenshot) await page.screenshot({ path: p.screenshot, fullPage: !!p.full_page });
    r.console_errors = console_errors;
    r.requests = requests;
    results.push(r);
    await context.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify({ pages: results }));
