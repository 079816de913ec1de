// Takes docs/screenshot-light.png and docs/screenshot-dark.png: the page at 1280x900 with a
// real review round on proj-x (posted over REST), once per theme.
// Run: node screenshots.mjs   (after cargo build --release)
import { join } from "node:path";
import { startRelay, launchBrowser, postMessage, REPO } from "./support.mjs";
import { REVIEW_PACKET, FEEDBACK, FOLLOW_UP } from "./conversation.mjs";

const relay = await startRelay();
const { browser, close } = await launchBrowser();
try {
  await postMessage(relay.url, "proj-x", "claude", REVIEW_PACKET);
  await postMessage(relay.url, "proj-x", "codex", FEEDBACK);
  await postMessage(relay.url, "proj-x", "claude", FOLLOW_UP);
  for (const theme of ["light", "dark"]) {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      deviceScaleFactor: 1,
      colorScheme: theme,
    });
    const page = await context.newPage();
    await page.goto(`${relay.url}/#proj-x`);
    await page.waitForSelector("#live[data-state=live]");
    await page.waitForSelector("#messages .entry >> nth=2");
    await page.evaluate(() => document.fonts && document.fonts.ready);
    // Read from the start of the round: the packet's header at the top.
    await page.$eval("#scroller", (s) => { s.scrollTop = 0; });
    const file = join(REPO, "docs", `screenshot-${theme}.png`);
    await page.screenshot({ path: file });
    console.log(`wrote ${file}`);
    await context.close();
  }
} finally {
  await close();
  await relay.stop();
}
