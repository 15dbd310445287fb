"""A trivial MCP server for benchmarks and smoke checks: one tool, ``echo``.

Run it with ``python -m loom_mcp._echo_server`` (stdio) or
``python -m loom_mcp._echo_server --http PORT`` (streamable HTTP on 127.0.0.1:PORT/mcp).
Its ``echo`` takes ``{"message": str}`` and answers the text ``Echo: <message>``, as
server-everything's ``echo`` does, so the two are interchangeable in ``loom bench``.
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer

__all__ = ["build_server", "main"]


def build_server() -> MCPServer:
    """The server: one tool, ``echo``."""
    server = MCPServer("loom-echo", version="1.0", log_level="WARNING")

    @server.tool(description="Echoes back the input string")
    def echo(message: str) -> str:
        return f"Echo: {message}"

    return server


def main(argv: list[str] | None = None) -> None:
    """Serve over stdio, or streamable HTTP with ``--http PORT``."""
    parser = argparse.ArgumentParser(prog="python -m loom_mcp._echo_server")
    parser.add_argument("--http", type=int, metavar="PORT")
    args = parser.parse_args(argv)
    server = build_server()
    if args.http is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
