#!/usr/bin/env python3
"""The stdio bridge (`claude-codex-relay mcp`) driven by the official MCP Python SDK (`mcp` on PyPI).

    python scripts/bridge-smoke.py [--binary target/release/claude-codex-relay]

Starts the relay on a free port (as scripts/sdk-smoke.py does), then has the SDK's stdio client
spawn `claude-codex-relay mcp --url ... --listen CHANNEL --as claude` and:

- initialize: the bridge declares capabilities.experimental["claude/channel"];
- tools/list gives post_message, fetch_messages, list_channels;
- post_message as claude, then fetch_messages finds it (the relay's answers through the bridge);
- a message posted by codex over REST arrives as one notifications/claude/channel whose
  content names the sender and carries the text and whose meta holds channel, sender, id and
  ts as strings; claude's own message is not pushed.

The SDK's session (mcp 1.x) checks every server notification against its own closed list of
methods and drops any other before its message handler could see it, so the events are read
where they arrive: on the stdio transport's read stream, which is passed on to the SDK's session
unchanged. Works with mcp 1.x and 2.x. Exits non-zero on the first mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import urllib.request
import uuid
from importlib.metadata import version as dist_version

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

STEP_TIMEOUT = 20.0
CHANNEL_METHOD = "notifications/claude/channel"


def load_sdk_smoke():
    """scripts/sdk-smoke.py, for its relay starter and helpers."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk-smoke.py")
    spec = importlib.util.spec_from_file_location("sdk_smoke", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


smoke = load_sdk_smoke()
check, field, Mismatch = smoke.check, smoke.field, smoke.Mismatch


def rest_post(base: str, target: str, sender: str, text: str) -> int:
    body = json.dumps({"target": target, "sender": sender, "text": text}).encode()
    rq = urllib.request.Request(f"{base}/api/messages", data=body, method="POST",
                                headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(rq, timeout=STEP_TIMEOUT) as r:
        return json.loads(r.read())["posted"]


def notification_of(item):
    """(method, params) of a JSON-RPC notification read from the transport, else None."""
    message = getattr(item, "message", None)
    root = getattr(message, "root", message)  # 1.x wraps the message in a RootModel, 2.x not
    method = getattr(root, "method", None)
    if method is None or getattr(root, "id", None) is not None:
        return None
    return method, getattr(root, "params", None)


async def run(binary: str, base: str) -> None:
    channel = f"bridge-smoke-{uuid.uuid4().hex[:8]}"
    params = StdioServerParameters(
        command=binary, args=["mcp", "--url", base, "--listen", channel, "--as", "claude"])
    events: list[dict] = []
    arrived = anyio.Event()
    async with stdio_client(params) as streams:
        read, write = streams[0], streams[1]
        to_session, session_read = anyio.create_memory_object_stream(1000)

        async def tap() -> None:
            async with to_session:
                async for item in read:
                    seen = notification_of(item)
                    if seen and seen[0] == CHANNEL_METHOD:
                        events.append(seen[1])
                        arrived.set()
                    await to_session.send(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(tap)
            async with ClientSession(session_read, write) as session:
                init = await asyncio.wait_for(session.initialize(), STEP_TIMEOUT)
                experimental = field(init.capabilities, "experimental", "experimental") or {}
                check("claude/channel" in experimental,
                      f"initialize declares no claude/channel capability: {init.capabilities!r}")
                tools = await asyncio.wait_for(session.list_tools(), STEP_TIMEOUT)
                names = {t.name for t in tools.tools}
                check(smoke.EXPECTED_TOOLS <= names, f"tools/list gave {sorted(names)}")

                mine = f"from claude {uuid.uuid4()}"
                posted = await asyncio.wait_for(session.call_tool(
                    "post_message", {"target": channel, "sender": "claude", "text": mine}), STEP_TIMEOUT)
                check(not field(posted, "is_error", "isError"), f"post_message failed: {posted.content!r}")
                own_id = field(posted, "structured_content", "structuredContent")["posted"]
                fetched = await asyncio.wait_for(
                    session.call_tool("fetch_messages", {"target": channel}), STEP_TIMEOUT)
                fs = field(fetched, "structured_content", "structuredContent")
                check([m["id"] for m in fs["messages"]] == [own_id], f"fetch_messages gave {fs!r}")

                theirs = f"Verdict: approve {uuid.uuid4()}"
                review_id = rest_post(base, channel, "codex", theirs)
                with anyio.fail_after(STEP_TIMEOUT):
                    await arrived.wait()
                check(len(events) == 1, f"one event expected, got {events!r}")
                e = events[0]
                check(isinstance(e.get("content"), str) and theirs in e["content"]
                      and "codex" in e["content"], f"event content {e.get('content')!r}")
                meta = e.get("meta") or {}
                check(meta.get("channel") == channel and meta.get("sender") == "codex"
                      and meta.get("id") == str(review_id) and isinstance(meta.get("ts"), str),
                      f"event meta {meta!r}")
                check(own_id < review_id, "ids ascend")
            tg.cancel_scope.cancel()
    print(f"bridge-smoke: ok (tools {sorted(names)}, message {own_id} round-tripped, "
          f"event for message {review_id} received)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default="target/release/claude-codex-relay")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    print(f"bridge-smoke: mcp {dist_version('mcp')} on Python {sys.version.split()[0]}", flush=True)
    tmp = tempfile.mkdtemp(prefix="bridge-smoke.")
    proc, base = smoke.start_relay(binary, tmp)
    try:
        asyncio.run(run(binary, base))
        return 0
    except Mismatch as e:
        print(f"bridge-smoke: FAILED: {e}", file=sys.stderr)
        return 1
    except BaseException as e:  # noqa: BLE001 - report SDK errors (often ExceptionGroups) plainly
        print(f"bridge-smoke: FAILED: {type(e).__name__}: {e!r}", file=sys.stderr)
        for sub in getattr(e, "exceptions", []):
            print(f"  caused by {type(sub).__name__}: {sub!r}", file=sys.stderr)
        return 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
