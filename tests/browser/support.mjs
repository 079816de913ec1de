// Shared by the browser tests and the screenshot script: start the real release binary on a
// free port with an in-memory store and throwaway logs, launch Debian's headless Chromium
// through playwright-core, and talk to the relay over REST and MCP exactly as clients do.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "..", "..");
export const BINARY = process.env.RELAY_BINARY || join(REPO, "target", "release", "claude-codex-relay");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** A fresh temporary directory for a relay's logs (and data, for a file store). */
export function tempDir() {
  return mkdtempSync(join(tmpdir(), "relay-browser-"));
}

/** Starts the relay; resolves to { url, dir, stop(), kill(), output() } once it prints its
 *  address. Options: `args` (more flags; later flags win), `dir` (reuse a directory, which
 *  stop() then leaves in place), `port` (default 0: any free port). */
export async function startRelay({ args: extraArgs = [], dir: givenDir, port = 0 } = {}) {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run cargo build --release`);
  const dir = givenDir || tempDir();
  const args = [
    "--port", String(port),
    "--store", "memory",
    "--log-path", join(dir, "relay.log"),
    "--channel-log-path", join(dir, "channel.log"),
    ...extraArgs,
  ];
  const child = spawn(BINARY, args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay printed no address in 10 s:\n${out}`)), 10_000);
    const onData = (chunk) => {
      out += chunk;
      const m = /http:\/\/127\.0\.0\.1:\d+/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[0]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (chunk) => { out += chunk; });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`relay exited with ${code} before listening:\n${out}`));
    });
  });
  const end = async (signal) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await gone;
    }
  };
  return {
    url,
    dir,
    port: Number(url.split(":").pop()),
    output: () => out,
    /** Ends the relay as a crash would (SIGKILL), keeping its directory. */
    kill: () => end("SIGKILL"),
    async stop() {
      await end("SIGTERM");
      if (!givenDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Launches headless Chromium; resolves to { browser, close() }. playwright-core gives every
 *  launch a fresh temporary --user-data-dir of its own (it refuses one passed in args), and
 *  every test opens its own context on top of it, so no cookie or storage leaks between tests. */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return {
    browser,
    async close() {
      await browser.close();
    },
  };
}

/** POST /api/messages; resolves to the stored message. */
export async function postMessage(base, target, sender, text, headers = {}) {
  const res = await fetch(`${base}/api/messages`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify({ target, sender, text }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`POST /api/messages: ${res.status} ${JSON.stringify(body)}`);
  return body.message;
}

/** One MCP session over Streamable HTTP: initialize, initialized, then tools/call. */
export async function mcpCall(base, name, args, headers = {}) {
  const post = async (body, session) => {
    const res = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json, text/event-stream",
        ...(session ? { "Mcp-Session-Id": session } : {}),
        ...headers,
      },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { res, text };
  };
  const parse = (text) => {
    // The answer is JSON, or one SSE event carrying it.
    const trimmed = text.trim();
    if (trimmed.startsWith("{")) return JSON.parse(trimmed);
    const data = trimmed.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
    return JSON.parse(data);
  };
  const init = await post({
    jsonrpc: "2.0", id: 1, method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "browser-test", version: "1" } },
  });
  if (!init.res.ok) throw new Error(`initialize: ${init.res.status} ${init.text}`);
  const session = init.res.headers.get("mcp-session-id");
  if (!session) throw new Error("initialize answered without Mcp-Session-Id");
  const note = await post({ jsonrpc: "2.0", method: "notifications/initialized" }, session);
  if (note.res.status >= 300) throw new Error(`notifications/initialized: ${note.res.status} ${note.text}`);
  const call = await post({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name, arguments: args } }, session);
  if (!call.res.ok) throw new Error(`tools/call: ${call.res.status} ${call.text}`);
  const reply = parse(call.text);
  if (reply.error) throw new Error(`tools/call error: ${JSON.stringify(reply.error)}`);
  return reply.result;
}

/** A TCP relay in front of the relay that a test can cut, as a dropped Wi-Fi or a restarting
 *  relay would: `cut()` resets every open connection, and while `down` is true new connections
 *  are reset as soon as they arrive. The browser talks to `url`; nothing else is changed. New
 *  connections go to port `target`, which a test may change to put another relay behind the
 *  same address (a relay restarted with a new history). */
export async function cuttableLine(targetPort) {
  const net = await import("node:net");
  const open = new Set();
  const line = { down: false, url: "", connections: 0, target: targetPort };
  const server = net.createServer((client) => {
    if (line.down) {
      client.resetAndDestroy();
      return;
    }
    line.connections++;
    const upstream = net.connect(line.target, "127.0.0.1");
    const pair = { client, upstream };
    open.add(pair);
    const drop = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  line.url = `http://127.0.0.1:${server.address().port}`;
  line.cut = () => {
    for (const { client, upstream } of open) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    open.clear();
  };
  line.close = async () => {
    line.cut();
    await new Promise((r) => server.close(r));
  };
  return line;
}
