// Open WebUI in Debian's Chromium, driven by Playwright: pick a model from the list, send a
// message, watch the answer stream in, take a screenshot. Prints a JSON summary.
//   node drive.mjs OPENWEBUI_URL MODEL MESSAGE SCREENSHOT
import { chromium } from "playwright-core";

const [url, model, message, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // The machine has no network: without these Chromium keeps dialling Google's services.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const summary = { model, message };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url, { waitUntil: "load" });
  const welcome = page.getByRole("button", { name: "Okay, Let's Go!" });
  await welcome.click({ timeout: 20_000 }).catch(() => {}); // the release-notes dialog of a first visit

  // The model list: Open WebUI's selector lists what the gateway's /v1/models returned.
  await page.locator('button[aria-label^="Selected model"]').first().click();
  const listed = await page.locator('[role="menu"] button, [role="option"]').allInnerTexts();
  summary.listedModels = listed.map((t) => t.trim().split("\n")[0]).filter(Boolean);
  await page.locator('[role="menu"] button, [role="option"]').filter({ hasText: new RegExp(`^\\s*${model}\\s*$`, "m") })
    .first().click();
  summary.selected = await page.locator('button[aria-label^="Selected model"]').first().getAttribute("aria-label");

  const input = page.locator("#chat-input");
  await input.click();
  await input.fill(message);
  await input.press("Enter");

  // Sample the answer while it arrives: a streamed answer grows in several steps.
  const answer = page.locator(".chat-assistant").last();
  await answer.waitFor({ timeout: 60_000 });
  const lengths = [];
  const deadline = Date.now() + 180_000;
  let stable = 0;
  while (Date.now() < deadline) {
    const text = (await answer.innerText().catch(() => "")).trim();
    if (lengths.length === 0 || lengths[lengths.length - 1] !== text.length) {
      lengths.push(text.length);
      stable = 0;
    } else if (text.length > 0 && ++stable >= 30) {
      break; // unchanged for 3 s: finished
    }
    await page.waitForTimeout(100);
  }
  summary.answer = (await answer.innerText()).trim();
  summary.growthSteps = lengths.filter((n) => n > 0).length;
  await page.screenshot({ path: screenshot });
  summary.screenshot = screenshot;
} catch (err) {
  summary.error = String(err);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
process.exit(summary.error ? 1 : 0);
