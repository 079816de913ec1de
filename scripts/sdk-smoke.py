#!/usr/bin/env python3
"""End-to-end smoke test of the relay with the official MCP Python SDK (`mcp` on PyPI).

    python scripts/sdk-smoke.py [--binary target/release/claude-codex-relay | --url http://127.0.0.1:8010]

Without --url it starts the binary on a free port with a temporary data and log directory and
stops it at the end. For each transport it connects, checks the negotiated protocol version,
lists the tools (post_message, fetch_messages, list_channels must be there), posts a unique
text with post_message, fetches it back with fetch_messages and finds the same id and text in
structuredContent:

- Streamable HTTP at /mcp through ClientSession (the plain initialize handshake);
- the legacy HTTP+SSE transport at /sse through ClientSession;
- with mcp 2.x also `mcp.Client(url)`, whose default mode first probes `server/discover`
  (a method the relay does not have) and must fall back to initialize.

Works with mcp 1.x and 2.x (their field names differ: structuredContent / structured_content).
Exits non-zero on the first mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from importlib.metadata import version as dist_version

from mcp import ClientSession
from mcp.client.sse import sse_client

try:  # 1.x has both names (3-tuple); 2.x only this one (2-tuple)
    from mcp.client.streamable_http import streamable_http_client
except ImportError:  # pragma: no cover - older 1.x
    from mcp.client.streamable_http import streamablehttp_client as streamable_http_client

EXPECTED_TOOLS = {"post_message", "fetch_messages", "list_channels"}
SUPPORTED_VERSIONS = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}
STEP_TIMEOUT = 20.0


class Mismatch(Exception):
    pass


def field(obj, snake: str, camel: str):
    """A result attribute under its 2.x (snake_case) or 1.x (camelCase) name."""
    if hasattr(obj, snake):
        return getattr(obj, snake)
    return getattr(obj, camel, None)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise Mismatch(what)


async def exercise(label: str, call, list_tools, negotiated: str | None) -> None:
    """list tools, post a unique text, fetch it back; `call(name, args)` returns a CallToolResult."""
    if negotiated is not None:
        check(negotiated in SUPPORTED_VERSIONS, f"{label}: negotiated unsupported version {negotiated!r}")
    tools = await asyncio.wait_for(list_tools(), STEP_TIMEOUT)
    names = {t.name for t in tools.tools}
    check(EXPECTED_TOOLS <= names, f"{label}: tools/list gave {sorted(names)}, want {sorted(EXPECTED_TOOLS)}")
    for t in tools.tools:
        schema = field(t, "input_schema", "inputSchema")
        check(isinstance(schema, dict) and schema.get("type") == "object",
              f"{label}: tool {t.name} has inputSchema {schema!r}")

    target = f"sdk-smoke-{uuid.uuid4().hex[:8]}"
    text = f"hello from the {label} smoke test {uuid.uuid4()}"
    posted = await asyncio.wait_for(
        call("post_message", {"target": target, "sender": "sdk-smoke", "text": text}), STEP_TIMEOUT)
    check(not field(posted, "is_error", "isError"), f"{label}: post_message failed: {posted.content!r}")
    ps = field(posted, "structured_content", "structuredContent")
    check(isinstance(ps, dict) and ps.get("ok") is True and isinstance(ps.get("posted"), int),
          f"{label}: post_message structuredContent {ps!r}")
    check(any(getattr(c, "type", None) == "text" and json.loads(c.text) == ps for c in posted.content),
          f"{label}: post_message has no text block equal to its structuredContent: {posted.content!r}")

    fetched = await asyncio.wait_for(call("fetch_messages", {"target": target}), STEP_TIMEOUT)
    check(not field(fetched, "is_error", "isError"), f"{label}: fetch_messages failed: {fetched.content!r}")
    fs = field(fetched, "structured_content", "structuredContent")
    check(isinstance(fs, dict) and isinstance(fs.get("messages"), list),
          f"{label}: fetch_messages structuredContent {fs!r}")
    found = [m for m in fs["messages"] if m.get("text") == text]
    check(len(found) == 1, f"{label}: posted text not found once in fetch_messages: {fs!r}")
    m = found[0]
    check(m.get("id") == ps["posted"] and m.get("target") == target and m.get("sender") == "sdk-smoke",
          f"{label}: fetched message {m!r} does not match post {ps!r}")
    check(fs.get("latest_id") == ps["posted"], f"{label}: latest_id {fs.get('latest_id')!r} != {ps['posted']}")

    channels = await asyncio.wait_for(call("list_channels", {}), STEP_TIMEOUT)
    cs = field(channels, "structured_content", "structuredContent")
    check(isinstance(cs, dict) and target in cs.get("channels", []),
          f"{label}: list_channels does not list {target}: {cs!r}")
    print(f"sdk-smoke: {label}: ok (protocol {negotiated or '?'}, tools {sorted(names)}, "
          f"message {ps['posted']} round-tripped)", flush=True)


async def via_session(label: str, transport) -> None:
    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await asyncio.wait_for(session.initialize(), STEP_TIMEOUT)
            negotiated = str(field(init, "protocol_version", "protocolVersion"))
            await exercise(label, session.call_tool, session.list_tools, negotiated)


async def via_client(label: str, server) -> None:
    import mcp

    async with mcp.Client(server) as client:
        negotiated = None
        for attr in ("protocol_version", "negotiated_protocol_version"):
            v = getattr(client, attr, None)
            if isinstance(v, str):
                negotiated = v
                break
        await exercise(label, client.call_tool, client.list_tools, negotiated)


async def run_all(base: str) -> None:
    await via_session("streamable-http /mcp", streamable_http_client(f"{base}/mcp"))
    await via_session("legacy-sse /sse", sse_client(f"{base}/sse"))
    import mcp

    if hasattr(mcp, "Client"):  # 2.x: the high-level client probes server/discover first
        await via_client("mcp.Client /mcp (server/discover probe)", f"{base}/mcp")
        await via_client("mcp.Client /sse", sse_client(f"{base}/sse"))


def start_relay(binary: str, tmp: str) -> tuple[subprocess.Popen, str]:
    out_path = os.path.join(tmp, "relay.stdout")
    out = open(out_path, "w")
    err = open(os.path.join(tmp, "relay.stderr"), "w")
    addr_path = os.path.join(tmp, "relay.addr")
    proc = subprocess.Popen(
        [binary, "--port", "0", "--data-dir", os.path.join(tmp, "data"),
         "--log-path", os.path.join(tmp, "log", "tool.log"),
         "--channel-log-path", os.path.join(tmp, "log", "ch.log"),
         "--addr-file", addr_path],
        stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    deadline = time.monotonic() + 20
    base = None
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(addr_path):
            with open(addr_path) as f:
                base = f.read().strip()
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return proc, base
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    with open(out_path) as f, open(os.path.join(tmp, "relay.stderr")) as e:
        sys.exit(f"sdk-smoke: the relay did not come up ({base=}):\n{f.read()}{e.read()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="target/release/claude-codex-relay")
    ap.add_argument("--url", help="use a running relay (base URL, without /mcp)")
    args = ap.parse_args()
    print(f"sdk-smoke: mcp {dist_version('mcp')} on Python {sys.version.split()[0]}", flush=True)

    proc = None
    tmp = tempfile.mkdtemp(prefix="sdk-smoke.")
    try:
        base = args.url.rstrip("/") if args.url else None
        if base is None:
            proc, base = start_relay(args.binary, tmp)
        try:
            asyncio.run(run_all(base))
        except Mismatch as e:
            print(f"sdk-smoke: FAILED: {e}", file=sys.stderr)
            return 1
        except BaseException as e:  # noqa: BLE001 - report SDK errors (often ExceptionGroups) plainly
            print(f"sdk-smoke: FAILED: {type(e).__name__}: {e!r}", file=sys.stderr)
            for sub in getattr(e, "exceptions", []):
                print(f"  caused by {type(sub).__name__}: {sub!r}", file=sys.stderr)
            return 1
        if proc is not None and proc.poll() is not None:
            print(f"sdk-smoke: FAILED: the relay exited with {proc.returncode}", file=sys.stderr)
            return 1
        print("sdk-smoke: all transports ok", flush=True)
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
