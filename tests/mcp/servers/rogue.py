"""A hand-written MCP server over stdio that misbehaves on purpose (no SDK: raw JSON-RPC).

It speaks the handshake era correctly for ``initialize``, ``tools/list`` and
``tools/call``, and misbehaves when told:

- argv ``--banner``: writes lines that are not JSON-RPC on stdout before anything else
  (garbage, an envelope without result or error, a line longer than 200 KB);
- argv ``--silent``: reads requests and never answers any (not even ``initialize``);
- tool ``ok``: answers ``{"text": "fine"}``;
- tool ``bad_result``: answers a result whose ``content`` is not a list;
- tool ``bad_output``: declares an output schema and answers structured content that
  breaks it;
- tool ``fail``: answers a result with ``isError`` set;
- tool ``flood``: sends ``count`` ``notifications/resources/updated`` before answering;
- tool ``hang``: never answers; a ``notifications/cancelled`` for it is appended to the
  file named by ``$ROGUE_LOG``;
- tool ``crash``: exits with status 3 without answering.
- tool ``deaf``: closes its stdin and keeps running, never answering.
"""

from __future__ import annotations

import json
import os
import sys
import time

TOOLS = [
    {"name": "ok", "description": "answers fine", "inputSchema": {"type": "object"}},
    {"name": "bad_result", "description": "breaks the protocol", "inputSchema": {"type": "object"}},
    {
        "name": "bad_output",
        "description": "breaks its output schema",
        "inputSchema": {"type": "object"},
        "outputSchema": {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"],
        },
    },
    {
        "name": "flood",
        "description": "floods notifications",
        "inputSchema": {
            "type": "object",
            "properties": {"count": {"type": "integer"}},
            "required": ["count"],
        },
    },
    {"name": "fail", "description": "reports an error", "inputSchema": {"type": "object"}},
    {"name": "hang", "description": "never answers", "inputSchema": {"type": "object"}},
    {"name": "crash", "description": "exits", "inputSchema": {"type": "object"}},
    {"name": "deaf", "description": "stops reading", "inputSchema": {"type": "object"}},
]


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request_id: object, result: dict) -> None:
    send({"jsonrpc": "2.0", "id": request_id, "result": result})


def call(request_id: object, name: str, arguments: dict) -> None:
    if name == "ok":
        answer(request_id, {"content": [{"type": "text", "text": "fine"}]})
    elif name == "bad_result":
        answer(request_id, {"content": "not a list"})
    elif name == "bad_output":
        answer(
            request_id,
            {"content": [{"type": "text", "text": "{}"}], "structuredContent": {"n": "many"}},
        )
    elif name == "flood":
        for i in range(int(arguments.get("count", 0))):
            send(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/resources/updated",
                    "params": {"uri": f"rogue://item/{i}"},
                }
            )
        answer(request_id, {"content": [{"type": "text", "text": "flooded"}]})
    elif name == "fail":
        answer(request_id, {"content": [{"type": "text", "text": "it broke"}], "isError": True})
    elif name == "hang":
        return
    elif name == "crash":
        sys.exit(3)
    elif name == "deaf":
        os.close(0)
        time.sleep(3600)
    else:
        answer(
            request_id, {"content": [{"type": "text", "text": f"no tool {name}"}], "isError": True}
        )


def main() -> None:
    if "--banner" in sys.argv:
        print("rogue server 1.0 starting up", flush=True)
        send({"jsonrpc": "2.0", "id": "orphan"})
        sys.stdout.write("x" * 200_000 + "\n")
        sys.stdout.flush()
    silent = "--silent" in sys.argv
    for line in sys.stdin:
        message = json.loads(line)
        method = message.get("method")
        request_id = message.get("id")
        if method == "notifications/cancelled" and os.environ.get("ROGUE_LOG"):
            with open(os.environ["ROGUE_LOG"], "a") as log:
                log.write(json.dumps(message["params"]) + "\n")
        if silent or request_id is None:
            continue
        if method == "initialize":
            answer(
                request_id,
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {"listChanged": False}},
                    "serverInfo": {"name": "rogue", "version": "1.0"},
                },
            )
        elif method == "tools/list":
            answer(request_id, {"tools": TOOLS})
        elif method == "tools/call":
            params = message.get("params") or {}
            call(request_id, params.get("name", ""), params.get("arguments") or {})
        elif method == "ping":
            answer(request_id, {})
        else:
            send(
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": -32601, "message": f"Method not found: {method}"},
                }
            )


if __name__ == "__main__":
    main()
