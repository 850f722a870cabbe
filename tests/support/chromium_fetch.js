// What a browser-side OAuth client (the MCP Inspector's page) fetches, from a page of the
// given loopback address in headless Chromium: the RFC 9728 document and the authorization server
// metadata (with MCP-Protocol-Version, as the SDK sends it), a registration, a token request.
// The page comes from a server of its own on `bind`, named `name`; the service is reached cross-origin, so Chromium's own
// CORS checks decide what the page may read. Prints one JSON line: each step's status, or
// "blocked" when the browser refused the answer to the page.
//
//   node chromium_fetch.js '{"playwright": "<dir>", "chromium": "<path>", "bind": "127.0.0.1",
//                           "name": "localhost", "service": "http://127.0.0.1:8000"}'
"use strict";

const job = JSON.parse(process.argv[2]);
const http = require("http");
const { chromium } = require(job.playwright);

async function main() {
  const browser = await chromium.launch({
    executablePath: job.chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    // A real loopback server for the page (a page Playwright answered itself would count as
    // public and be refused access to loopback by Chromium whatever CORS says).
    const server = http.createServer((request, response) => {
      response.writeHead(200, { "Content-Type": "text/html" });
      response.end("<p>client</p>");
    });
    await new Promise((resolve) => server.listen(0, job.bind, resolve));
    const origin = `http://${job.name}:${server.address().port}`;
    const page = await browser.newPage();
    await page.goto(`${origin}/`);
    const results = await page.evaluate(async (service) => {
      const protocol = { "MCP-Protocol-Version": "2025-06-18" };
      const attempt = async (path, init) => {
        try {
          const response = await fetch(`${service}${path}`, init);
          return { status: response.status, body: await response.json() };
        } catch (error) {
          return "blocked";
        }
      };
      const registration = {
        client_name: "Browser client",
        redirect_uris: [`${location.origin}/oauth/callback`],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "none",
      };
      return {
        resource: await attempt("/.well-known/oauth-protected-resource/mcp", { headers: protocol }),
        server: await attempt("/.well-known/oauth-authorization-server", { headers: protocol }),
        register: await attempt("/oauth/register", {
          method: "POST",
          headers: { ...protocol, "Content-Type": "application/json" },
          body: JSON.stringify(registration),
        }),
        token: await attempt("/oauth/token", {
          method: "POST",
          headers: { ...protocol, "Content-Type": "application/x-www-form-urlencoded" },
          body: "grant_type=authorization_code&code=nope&client_id=nope&code_verifier=" + "v".repeat(50),
        }),
      };
    }, job.service);
    server.close();
    process.stdout.write(JSON.stringify({ origin, ...results }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
