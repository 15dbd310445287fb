"""Sampling through the model router: a real SDK server (``servers/sampler.py``) asks, a
real :class:`~loom.models.ModelRouter` answers or refuses."""

from __future__ import annotations

import asyncio
import json

import mcp_types
import pytest

from loom import ActionCall
from loom.models import (
    DETERMINISTIC_LABEL,
    DeterministicModel,
    Location,
    ModelRouter,
    ProviderEntry,
    RulePolicy,
)
from loom_mcp import McpSessionManager
from loom_mcp._sampling import router_sampling
from loom_mcp._session import SamplingRefusedError

from .conftest import python_server


def _router(location: Location) -> ModelRouter:
    model = DeterministicModel()
    return ModelRouter(RulePolicy(), [ProviderEntry(name="det", model=model, location=location)])


async def _ask(broker, router, privacy=None):
    sampling = router_sampling(router, privacy_of=lambda server: privacy)
    async with McpSessionManager(broker, sampling=sampling) as manager:
        await manager.add_server(
            {"name": "sampler", "allow_sampling": True, "protocol": "legacy"}
            | python_server("sampler")
        )
        payload = json.dumps({"prompt": "summarise the news"}).encode()
        result = await broker.invoke(ActionCall("sampler:ask", payload, timeout_ms=20_000))
    assert result.error is None, result.error
    return json.loads(result.output)["text"]


async def test_a_server_s_request_is_routed_and_answered(broker):
    text = await _ask(broker, _router(Location.LOCAL))
    assert text.startswith(f"sampled by det/deterministic: {DETERMINISTIC_LABEL}")
    assert "summarise the news" in text


async def test_a_request_the_router_drops_is_refused_with_the_reason(broker):
    # local-only data, and the only model is in the cloud: the router drops it
    text = await _ask(broker, _router(Location.CLOUD), privacy="local-only")
    assert text.startswith(f"refused ({mcp_types.INVALID_PARAMS}): sampling refused: ")
    assert "the model router did not run it" in text and "Drop" in text


def _params(*content, tools=None):
    messages = [mcp_types.SamplingMessage(role="user", content=c) for c in content]
    return mcp_types.CreateMessageRequestParams(messages=messages, max_tokens=10, tools=tools)


class _Held(DeterministicModel):
    """The deterministic model, answering only once released."""

    def __init__(self) -> None:
        super().__init__("held")
        self.release = asyncio.Event()

    async def complete(self, messages, tools=(), **options):
        await self.release.wait()
        return await super().complete(messages, tools, **options)


async def test_a_server_may_have_only_max_pending_requests_running():
    model = _Held()
    router = ModelRouter(RulePolicy(), [ProviderEntry(name="held", model=model)])
    sample = router_sampling(router, max_pending=2)
    text = mcp_types.TextContent(type="text", text="hi")
    running = [asyncio.ensure_future(sample("srv", _params(text))) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(SamplingRefusedError, match="already has 2 sampling requests running"):
        await sample("srv", _params(text))
    other = asyncio.ensure_future(sample("other", _params(text)))  # per server
    model.release.set()
    answers = await asyncio.gather(*running, other)
    assert all(a.content.text.startswith(DETERMINISTIC_LABEL) for a in answers)
    assert (await sample("srv", _params(text))).model == "held/deterministic"


async def test_only_text_is_accepted():
    sample = router_sampling(_router(Location.LOCAL))
    image = mcp_types.ImageContent(type="image", data="AAAA", mime_type="image/png")
    with pytest.raises(SamplingRefusedError, match=r"messages\[0\] holds 'image' content"):
        await sample("srv", _params(image))
    with pytest.raises(SamplingRefusedError, match="no messages"):
        await sample("srv", _params())
    text = mcp_types.TextContent(type="text", text="hi")
    answered = await sample("srv", _params(text))
    assert answered.content.text.startswith(DETERMINISTIC_LABEL)
    assert answered.stop_reason == "endTurn"
