"""The tool-use loop: offer capabilities as tools, run what the model asks, feed results back."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loom._action import ActionCall, ActionError, ActionResult, ActionStatus
from loom.actions._provider import ErrorCode
from loom.tools._model import ChatModel, Message, ModelTurn, ToolCall, ToolSpec
from loom.tools._names import ToolNameMap
from loom.tools._specs import tool_spec

if TYPE_CHECKING:
    from loom.actions import ActionBroker

__all__ = ["OrchestratorResult", "StopReason", "ToolCallRecord", "ToolOrchestrator"]


# Less time than this left ends a run: tool timeouts are whole milliseconds, so a call
# capped by the budget returns up to 1 ms before the deadline.
_MIN_SLICE_S = 0.001


class StopReason(enum.StrEnum):
    """Why a run ended."""

    #: The model answered without asking for tools.
    ANSWER = "answer"
    #: ``max_steps`` model turns all asked for tools.
    MAX_STEPS = "max_steps"
    #: The time budget ran out.
    TIME_BUDGET = "time_budget"


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call of a run and how it ended.

    Attributes:
        step: the model turn (from 1) that asked for it.
        tool_call_id: the model's id of the call.
        tool: the tool name the model used.
        capability: the capability it maps to; None for an unknown tool.
        status: the outcome (``ActionStatus``).
        error: why it failed, if it did.
        output: the capability's output (empty on failure).
        elapsed_ms: from the call to its result.
    """

    step: int
    tool_call_id: str
    tool: str
    capability: str | None
    status: ActionStatus
    error: ActionError | None
    output: bytes
    elapsed_ms: float


@dataclass(slots=True)
class OrchestratorResult:
    """What a run produced.

    Attributes:
        answer: the model's last text (the answer when ``stop_reason`` is ANSWER).
        stop_reason: why the run ended.
        steps: model turns taken.
        messages: the whole transcript in the OpenAI shape, the input messages first.
        calls: every tool call, in the order the model asked for them.
    """

    answer: str | None
    stop_reason: StopReason
    steps: int
    messages: list[Message] = field(default_factory=list)
    calls: list[ToolCallRecord] = field(default_factory=list)


class ToolOrchestrator:
    """Runs the tool-use loop of a chat model over the broker's capabilities.

    Each step asks the model for a turn with the tools on offer; the calls it asks for run
    through the broker (those of one turn in parallel, at most ``max_parallel`` at once),
    and their results go back as ``role: tool`` messages. A tool the model names that is
    not on offer gets NOT_FOUND, and arguments that are not a JSON object get
    INVALID_PARAMS: both go back to the model like any other result.

    Args:
        broker: runs the calls.
        model: the chat model (:class:`~loom.tools.ChatModel`).
        max_steps: model turns at most.
        time_budget_s: wall time for a whole run; tool calls get what remains as their
            timeout.
        max_tools: capabilities offered at most (the first by name).
        parallel: run the calls of one turn concurrently.
        max_parallel: calls of one turn running at once.
        tool_timeout_ms: the timeout of one tool call (capped by the time left).
        capabilities: the capability names to offer; all when None.
        max_result_chars: a tool result longer than this is cut, with a note.
    """

    def __init__(
        self,
        broker: ActionBroker,
        model: ChatModel,
        *,
        max_steps: int = 8,
        time_budget_s: float = 120.0,
        max_tools: int = 64,
        parallel: bool = True,
        max_parallel: int = 8,
        tool_timeout_ms: int = 30_000,
        capabilities: Collection[str] | None = None,
        max_result_chars: int = 16_000,
    ) -> None:
        for label, value in (
            ("max_steps", max_steps),
            ("time_budget_s", time_budget_s),
            ("max_tools", max_tools),
            ("max_parallel", max_parallel),
            ("tool_timeout_ms", tool_timeout_ms),
            ("max_result_chars", max_result_chars),
        ):
            if value <= 0:
                raise ValueError(f"{label} must be > 0, got {value}")
        self.broker = broker
        self.model = model
        self.max_steps = max_steps
        self.time_budget_s = time_budget_s
        self.max_tools = max_tools
        self.parallel = parallel
        self.max_parallel = max_parallel
        self.tool_timeout_ms = tool_timeout_ms
        self.capabilities = None if capabilities is None else frozenset(capabilities)
        self.max_result_chars = max_result_chars

    def offer(self) -> tuple[list[ToolSpec], ToolNameMap]:
        """The tools a run offers now (the newest version of each capability) and the map
        of their names."""
        descriptors = {}
        for descriptor in self.broker.list_capabilities():  # by name, then version: newest last
            if self.capabilities is None or descriptor.name in self.capabilities:
                descriptors[descriptor.name] = descriptor
        chosen = [descriptors[n] for n in sorted(descriptors)[: self.max_tools]]
        names = ToolNameMap(d.name for d in chosen)
        return [tool_spec(d, names[d.name]) for d in chosen], names

    async def run(
        self,
        messages: str | Sequence[Message],
        *,
        system: str | None = None,
        correlation_id: str = "",
    ) -> OrchestratorResult:
        """Run the loop until the model answers, ``max_steps`` turns, or the time budget.

        Args:
            messages: the conversation so far, or one user message as text.
            system: a system message put first.
            correlation_id: set on every tool call (header ``correlation_id``).

        Raises:
            Exception: what the model raises (its own failure, not a tool's).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.time_budget_s
        specs, names = self.offer()
        transcript: list[Message] = [{"role": "system", "content": system}] if system else []
        if isinstance(messages, str):
            transcript.append({"role": "user", "content": messages})
        else:
            transcript.extend(dict(m) for m in messages)
        result = OrchestratorResult(None, StopReason.MAX_STEPS, 0, transcript)
        for step in range(1, self.max_steps + 1):
            if deadline - loop.time() < _MIN_SLICE_S:
                result.stop_reason = StopReason.TIME_BUDGET
                return result
            scope = asyncio.timeout_at(deadline)
            try:
                async with scope:
                    turn = await self.model.complete(list(transcript), specs)
            except TimeoutError:
                if not scope.expired():
                    raise  # the model's own timeout, not the budget
                result.stop_reason = StopReason.TIME_BUDGET
                return result
            result.steps = step
            turn = _with_ids(turn)
            transcript.append(turn.to_message())
            result.answer = turn.text
            if not turn.tool_calls:
                result.stop_reason = StopReason.ANSWER
                return result
            records = await self._run_calls(step, turn.tool_calls, names, deadline, correlation_id)
            for record in records:
                transcript.append(self._tool_message(record))
            result.calls.extend(records)
        if deadline - loop.time() < _MIN_SLICE_S:
            result.stop_reason = StopReason.TIME_BUDGET
        return result

    async def _run_calls(
        self,
        step: int,
        calls: Sequence[ToolCall],
        names: ToolNameMap,
        deadline: float,
        correlation_id: str,
    ) -> list[ToolCallRecord]:
        if not self.parallel or len(calls) == 1:
            return [await self._call(step, c, names, deadline, correlation_id) for c in calls]
        slots = asyncio.Semaphore(self.max_parallel)

        async def bounded(call: ToolCall) -> ToolCallRecord:
            async with slots:
                return await self._call(step, call, names, deadline, correlation_id)

        return list(await asyncio.gather(*(bounded(c) for c in calls)))

    async def _call(
        self,
        step: int,
        tool_call: ToolCall,
        names: ToolNameMap,
        deadline: float,
        correlation_id: str,
    ) -> ToolCallRecord:
        started = time.perf_counter()
        capability = names.capability(tool_call.name)
        if capability is None:
            offered = ", ".join(sorted(names.values())) or "none"
            result = _refused(
                ErrorCode.NOT_FOUND, f"no tool named {tool_call.name!r}; offered: {offered}"
            )
        else:
            payload = _payload(tool_call.arguments)
            if isinstance(payload, ActionResult):
                result = payload
            else:
                left_ms = int((deadline - asyncio.get_running_loop().time()) * 1000)
                call = ActionCall(
                    capability,
                    payload,
                    id=f"call_{uuid.uuid4().hex}",
                    timeout_ms=max(1, min(self.tool_timeout_ms, left_ms)),
                    correlation_id=correlation_id,
                )
                if correlation_id:
                    call.headers["correlation_id"] = correlation_id
                result = await self.broker.invoke(call)
        return ToolCallRecord(
            step,
            tool_call.id,
            tool_call.name,
            capability,
            result.status,
            result.error,
            result.output,
            (time.perf_counter() - started) * 1000,
        )

    def _tool_message(self, record: ToolCallRecord) -> Message:
        if record.error is None:
            content = _text(record.output)
        else:
            content = json.dumps(
                {
                    "error": {
                        "status": record.status.name,
                        "code": record.error.code,
                        "message": record.error.message,
                    }
                },
                ensure_ascii=False,
            )
        if len(content) > self.max_result_chars:
            cut = len(content) - self.max_result_chars
            content = f"{content[: self.max_result_chars]}… [{cut} more characters cut]"
        return {"role": "tool", "tool_call_id": record.tool_call_id, "content": content}


def _with_ids(turn: ModelTurn) -> ModelTurn:
    """The turn with an id on every tool call (some servers leave them out)."""
    if all(c.id for c in turn.tool_calls):
        return turn
    calls = tuple(
        c if c.id else dataclasses.replace(c, id=f"call_{uuid.uuid4().hex[:24]}")
        for c in turn.tool_calls
    )
    return dataclasses.replace(turn, tool_calls=calls)


def _refused(code: str, message: str) -> ActionResult:
    return ActionResult("", ActionStatus.ERROR, b"", ActionError(str(code), message))


def _payload(arguments: Any) -> bytes | ActionResult:
    """The call's payload, or the INVALID_PARAMS result for arguments that are no object."""
    if isinstance(arguments, Mapping):
        try:
            return json.dumps(dict(arguments), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            return _refused(ErrorCode.INVALID_PARAMS, f"tool arguments are not JSON: {exc}")
    if not isinstance(arguments, str):
        return _refused(ErrorCode.INVALID_PARAMS, "tool arguments must be a JSON object")
    if not arguments.strip():
        return b"{}"
    try:
        parsed = json.loads(arguments)
    except ValueError as exc:
        return _refused(ErrorCode.INVALID_PARAMS, f"tool arguments are not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        kind = type(parsed).__name__
        return _refused(
            ErrorCode.INVALID_PARAMS, f"tool arguments must be a JSON object, not {kind}"
        )
    return arguments.encode()


def _text(output: bytes) -> str:
    try:
        return output.decode("utf-8")
    except UnicodeDecodeError:
        return f"<{len(output)} bytes of binary output>"
