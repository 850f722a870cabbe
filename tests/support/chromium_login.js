// A person in a real browser: headless Chromium (Debian's), driven by playwright-core.
// Opens the authorization URL an MCP client produced, answers the consent page, signs in on
// the managed-login page when it comes, and prints (one JSON line) the URL the browser was
// sent back to, which is answered here and never reaches the network.
//
//   node chromium_login.js '{"playwright": "<dir>", "chromium": "<path>", "url": "...",
//                            "redirect": "http://127.0.0.1:33418/callback",
//                            "decision": "approve" | "deny", "username": "...", "password": "..."}'
"use strict";

const job = JSON.parse(process.argv[2]);
const { chromium } = require(job.playwright);

async function main() {
  const browser = await chromium.launch({
    executablePath: job.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    let landed = null;
    let finished;
    const done = new Promise((resolve) => (finished = resolve));
    await page.route(`${job.redirect}**`, async (route) => {
      landed = route.request().url();
      await route.fulfill({ status: 200, contentType: "text/html", body: "<p>Signed in.</p>" });
      finished();
    });
    const seen = [];
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) seen.push(new URL(frame.url()).pathname);
    });
    await page.goto(job.url);
    await page.locator(`button[name=decision][value=${job.decision}]`).click();
    const signIn = page.locator("input[name=username]");
    await Promise.race([done, signIn.waitFor({ timeout: 15000 }).catch(() => null)]);
    if (landed === null) {
      await signIn.fill(job.username);
      await page.locator("input[name=password]").fill(job.password);
      await page.locator("button[type=submit]").click();
    }
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`never sent back: ${page.url()}`)), 15000);
    });
    try {
      await Promise.race([done, late]);
    } finally {
      clearTimeout(timer); // a pending timer would keep node running after the answer
    }
    process.stdout.write(JSON.stringify({ landed, seen }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
