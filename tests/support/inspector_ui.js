// A person using the MCP Inspector's web UI (2.x) in headless Chromium (Debian's), driven by
// playwright-core: adds the service as a Streamable HTTP server, connects, goes through the
// OAuth login the Inspector starts (consent page, embedded issuer's sign-in), lands back on the
// Inspector connected, lists the tools and calls `add` and `get_user_info`. Prints one JSON
// line with what the page showed; on failure leaves a screenshot, the page console and the
// page's requests in `artifacts` and exits 1.
//
//   node inspector_ui.js '{"playwright": "<dir>", "chromium": "<path>",
//                          "inspector": "http://127.0.0.1:<port>/?MCP_INSPECTOR_API_TOKEN=...",
//                          "server": "http://127.0.0.1:<port>/mcp",
//                          "username": "...", "password": "...", "artifacts": "<dir>"}'
"use strict";

const fs = require("fs");
const path = require("path");

const job = JSON.parse(process.argv[2]);
const { chromium } = require(job.playwright);

const SERVER_ID = "mcp-service";
const STEP = 20000; // no single step of a person waits longer than this

async function resultsOf(page) {
  // The Results card the Inspector shows after Execute Tool: its first block (the content
  // text) and the Structured Output editor's text.
  const card = page
    .locator(".mantine-Paper-root, .mantine-Card-root")
    .filter({ has: page.getByRole("heading", { name: "Results", exact: true }) })
    .last();
  await card.waitFor({ timeout: STEP });
  const structured = card
    .locator(".mantine-Paper-root, .mantine-Card-root")
    .filter({ hasText: "Structured Output" })
    .locator(".ace_text-layer")
    .first();
  await structured.waitFor({ timeout: STEP });
  return JSON.parse(await structured.innerText());
}

async function callTool(page, name, args) {
  await page.getByText(name, { exact: true }).click();
  for (const [key, value] of Object.entries(args)) {
    // Each argument is an Ace editor; its hidden textarea takes the keystrokes.
    await page.locator(`textarea[aria-label^="${key},"]`).focus();
    await page.keyboard.type(String(value));
  }
  await page.getByRole("button", { name: "Execute Tool" }).click();
  const result = await resultsOf(page);
  await page.getByRole("button", { name: "Close results" }).click();
  return result;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: job.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const consoleLines = [];
  const requests = [];
  const seen = [];
  let page;
  try {
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(STEP);
    // The Inspector's page links Google Fonts; there is no network beyond loopback here.
    await page.route(/^https:\/\/fonts\.(googleapis|gstatic)\.com\//, (route) => route.abort());
    page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
    const service = new URL(job.server).origin;
    const inspector = new URL(job.inspector).origin;
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (url.origin === service) {
        requests.push({ type: request.resourceType(), method: request.method(), path: url.pathname });
      }
    });
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) {
        const url = new URL(frame.url());
        seen.push(`${url.origin === service ? "service" : "inspector"}:${url.pathname}`);
      }
    });

    await page.goto(job.inspector);
    // Add Servers → + Add manually: Server ID, Transport streamable-http, URL, Add.
    await page.getByRole("button", { name: "Add Servers" }).click();
    await page.getByRole("menuitem", { name: "+ Add manually" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Server ID").fill(SERVER_ID);
    await dialog.getByLabel("Transport").click();
    await page.getByRole("option", { name: "streamable-http", exact: true }).click();
    await dialog.getByLabel("URL").fill(job.server);
    await dialog.getByRole("button", { name: "Add", exact: true }).click();
    await dialog.waitFor({ state: "hidden" });

    // The card's switch connects; the service answers 401 and the Inspector sends the tab
    // to the facade's authorize endpoint.
    const toggle = page.getByRole("switch", { name: `Connect or disconnect "${SERVER_ID}"` });
    const card = page
      .locator(".mantine-Paper-root, .mantine-Card-root")
      .filter({ has: toggle })
      .last();
    await card.getByText(job.server, { exact: true }).waitFor();
    const away = page.waitForURL((url) => url.origin === service, { timeout: STEP });
    // Mantine draws the switch over its checkbox; a click while the freshly added card is
    // still settling can be lost, so click again until the tab leaves for the service.
    for (let attempt = 0; attempt < 5; attempt++) {
      await toggle.click({ force: true });
      const left = await Promise.race([
        away.then(() => true),
        new Promise((resolve) => setTimeout(() => resolve(false), 3000)),
      ]);
      if (left || (await toggle.isChecked())) break;
    }
    await away;
    await page.locator("button[name=decision][value=approve]").click();
    const signIn = page.locator("input[name=username]");
    const back = page.waitForURL((url) => url.origin === inspector, { timeout: STEP });
    const first = await Promise.race([
      back.then(() => "back"),
      signIn.waitFor({ timeout: STEP }).then(() => "sign-in"),
    ]);
    if (first === "sign-in") {
      await signIn.fill(job.username);
      await page.locator("input[name=password]").fill(job.password);
      await page.locator("button[type=submit]").click();
    }
    await back;

    // Back on the Inspector: it finishes the token exchange and connects.
    await card.getByText("Connected", { exact: true }).waitFor({ timeout: STEP });
    const status = "Connected";

    await page.getByText("Tools", { exact: true }).first().click();
    const items = page.locator("button.list-item");
    await items.first().waitFor({ timeout: STEP });
    const tools = (await items.allInnerTexts()).map((text) => text.trim().split("\n").pop().trim());

    const added = await callTool(page, "add", { a: 5, b: 3 });
    const who = await callTool(page, "get_user_info", {});
    process.stdout.write(
      JSON.stringify({ status, tools, added, who, seen, requests, console: consoleLines }) + "\n",
    );
  } catch (error) {
    fs.mkdirSync(job.artifacts, { recursive: true });
    if (page) {
      await page
        .screenshot({ path: path.join(job.artifacts, "inspector.png"), fullPage: true })
        .catch(() => null);
      const body = await page.locator("body").innerText().catch(() => "");
      fs.writeFileSync(path.join(job.artifacts, "page.txt"), `${page.url()}\n\n${body}`);
    }
    fs.writeFileSync(path.join(job.artifacts, "console.txt"), consoleLines.join("\n"));
    fs.writeFileSync(path.join(job.artifacts, "requests.json"), JSON.stringify({ seen, requests }));
    throw error;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
