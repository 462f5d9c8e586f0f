// Drives bgevl serve's search page in headless Chromium (Debian's /usr/bin/chromium):
// picks an image, types a modification text, searches, and checks that the grid's first hit is
// the expected id; saves a screenshot. Exit status 0 on success, 1 with a message otherwise.
//
//   node tests/browser/search_page.mjs URL IMAGE TEXT EXPECTED_TOP_ID SCREENSHOT.png
import { chromium } from "playwright-core";

const [url, image, text, expected, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error("usage: node search_page.mjs URL IMAGE TEXT EXPECTED_TOP_ID SCREENSHOT.png");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let status = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => !document.getElementById("info").textContent.includes("connecting"));
  await page.setInputFiles("#file", image);
  await page.waitForSelector("#preview:not([hidden])");
  await page.fill("#text", text);
  await page.selectOption("#k", "10");
  await page.click("#search");
  await page.waitForSelector("#results .hit", { timeout: 30000 });
  // Wait until the thumbnails have loaded, so that the screenshot shows them.
  await page.waitForFunction(() =>
    [...document.querySelectorAll("#results .hit img")].every((i) => i.complete && i.naturalWidth > 0),
    null, { timeout: 30000 });
  const hits = await page.$$eval("#results .hit", (els) => els.map((e) => e.dataset.id));
  const statusText = await page.textContent("#status");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ hits, status: statusText }));
  if (errors.length) throw new Error("page errors: " + errors.join("; "));
  if (hits.length !== 10) throw new Error(`expected 10 hits, got ${hits.length}`);
  if (hits[0] !== expected) throw new Error(`top hit ${hits[0]}, expected ${expected}`);
} catch (e) {
  console.error(String(e));
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
