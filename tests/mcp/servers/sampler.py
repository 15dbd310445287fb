"""A real MCP server (the SDK's MCPServer) that asks its client for sampling whether or
not the client declared it: ``ask(prompt)`` answers the sampled text, or the error."""

from __future__ import annotations

import warnings

import mcp_types
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError

server = MCPServer("sampler", version="1.0", log_level="WARNING")


@server.tool(description="Ask the client's model about PROMPT")
async def ask(prompt: str, ctx: Context) -> str:
    message = mcp_types.SamplingMessage(
        role="user", content=mcp_types.TextContent(type="text", text=prompt)
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sampling is deprecated in 2026-07-28
            result = await ctx.session.create_message([message], max_tokens=50)
    except MCPError as exc:
        return f"refused ({exc.error.code}): {exc.error.message}"
    content = result.content
    return f"sampled by {result.model}: {getattr(content, 'text', content)}"


if __name__ == "__main__":
    server.run("stdio")
