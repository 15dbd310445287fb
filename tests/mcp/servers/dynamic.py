"""A real MCP server (the SDK's MCPServer) whose tool list changes at run time.

Tools: ``add_tool(name, text)`` adds a tool ``name`` that answers ``text``,
``remove_tool(name)`` removes one; both then tell the client that the list changed (on
the handshake era with ``notifications/tools/list_changed``, on 2026-07-28 through the
``subscriptions/listen`` stream). ``progress(steps)`` reports progress before answering.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("dynamic", version="1.0", log_level="WARNING")


async def _tools_changed(ctx: Context) -> None:
    if (ctx.protocol_version or "") >= "2026":
        await ctx.notify_tools_changed()
    else:
        await ctx.session.send_tool_list_changed()


@server.tool(description="Add a tool NAME that answers TEXT")
async def add_tool(name: str, text: str, ctx: Context) -> str:
    def answer() -> str:
        return text

    server.add_tool(answer, name=name, description=f"answers {text!r}")
    await _tools_changed(ctx)
    return f"added {name}"


@server.tool(description="Remove the tool NAME")
async def remove_tool(name: str, ctx: Context) -> str:
    server.remove_tool(name)
    await _tools_changed(ctx)
    return f"removed {name}"


@server.tool(description="Report STEPS progress notifications, then answer")
async def progress(steps: int, ctx: Context) -> str:
    for step in range(1, steps + 1):
        await ctx.report_progress(step, steps, f"step {step}")
    return "done"


if __name__ == "__main__":
    server.run()
