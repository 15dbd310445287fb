"""Tools: the LLM tool-use loop over the ActionBroker's capabilities.

- :class:`ToolOrchestrator` offers capabilities as tools in the OpenAI tool-call format,
  runs the calls a :class:`ChatModel` asks for (those of one turn in parallel), feeds the
  results back and stops at an answer, a step bound or a time budget.
- :class:`ToolNameMap` maps capability names (``web.search``, MCP's ``server:tool``) to
  valid OpenAI tool names and back.
- :class:`ScriptedModel` replays a script of turns, for tests without a model server.

See ``docs/actions.md``.
"""

from __future__ import annotations

from loom.tools._model import ChatModel, Message, ModelTurn, ToolCall, ToolSpec
from loom.tools._names import TOOL_NAME_PATTERN, ToolNameMap, is_tool_name
from loom.tools._orchestrator import (
    OrchestratorResult,
    StopReason,
    ToolCallRecord,
    ToolOrchestrator,
)
from loom.tools._scripted import ScriptedModel, ScriptedRequest, ScriptExhaustedError
from loom.tools._specs import PERMISSIVE_PARAMETERS, tool_parameters, tool_spec

__all__ = [
    "PERMISSIVE_PARAMETERS",
    "TOOL_NAME_PATTERN",
    "ChatModel",
    "Message",
    "ModelTurn",
    "OrchestratorResult",
    "ScriptExhaustedError",
    "ScriptedModel",
    "ScriptedRequest",
    "StopReason",
    "ToolCall",
    "ToolCallRecord",
    "ToolNameMap",
    "ToolOrchestrator",
    "ToolSpec",
    "is_tool_name",
    "tool_parameters",
    "tool_spec",
]
