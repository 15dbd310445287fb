"""``@capability``: schemas from type hints, sync and async functions, errors, and the
records plugins contribute (UPSTREAM.md §14 and §5)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from loom import ActionCall, ActionStatus, ProviderKind
from loom.actions import (
    ActionBroker,
    CapabilityError,
    CapabilityFunction,
    ErrorCode,
    NativeProvider,
    capability,
)
from loom.contributions import Capability


class Forecast(BaseModel):
    city: str
    celsius: float
    tags: list[str] = []


@capability("weather.get", version="2.1", description="Weather for a city")
async def weather(city: str, days: int = 1, units: str = "c") -> Forecast:
    return Forecast(city=city, celsius=21.5 if units == "c" else 70.7, tags=[str(days)])


@capability
def shout(text: str, times: int = 1) -> str:
    """Upper-case a text.

    The second paragraph is not part of the description.
    """
    return text.upper() * times


class Opaque:
    """Not a type pydantic can validate."""


def _metadata_json(provider: NativeProvider, key: str) -> Any:
    return json.loads(provider.descriptor.metadata[key])


# -- schemas -----------------------------------------------------------------------------------


def test_input_schema_from_signature() -> None:
    assert weather.input_schema == {
        "additionalProperties": False,
        "properties": {
            "city": {"title": "City", "type": "string"},
            "days": {"default": 1, "title": "Days", "type": "integer"},
            "units": {"default": "c", "title": "Units", "type": "string"},
        },
        "required": ["city"],
        "title": "weather.get",
        "type": "object",
    }


def test_output_schema_from_return_annotation() -> None:
    assert weather.output_schema == {
        "properties": {
            "city": {"title": "City", "type": "string"},
            "celsius": {"title": "Celsius", "type": "number"},
            "tags": {"default": [], "items": {"type": "string"}, "title": "Tags", "type": "array"},
        },
        "required": ["city", "celsius"],
        "title": "Forecast",
        "type": "object",
    }
    assert shout.output_schema == {"type": "string"}


def test_unannotated_parameters_take_the_default_type_or_str() -> None:
    @capability("loose")
    def loose(a, b=3, c=None, d=2.5):  # type: ignore[no-untyped-def]
        return None

    props = loose.input_schema["properties"]
    assert props["a"] == {"title": "A", "type": "string"}
    assert props["b"]["type"] == "integer"
    assert props["c"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert props["d"]["type"] == "number"
    assert loose.input_schema["required"] == ["a"]
    assert loose.output_schema is None  # no return annotation


def test_annotated_fields_reserved_names_and_action_call_parameter() -> None:
    @capability("odd")
    def odd(
        schema: Annotated[str, Field(description="a name pydantic reserves")],
        _id: int,
        call: ActionCall,
        **rest: Any,
    ) -> dict[str, str]:
        return {"schema": schema, "id": str(_id), "call": call.id}

    schema = odd.input_schema
    assert sorted(schema["properties"]) == ["_id", "schema"]
    assert schema["properties"]["schema"]["description"] == "a name pydantic reserves"
    assert schema["additionalProperties"] is True  # **rest takes extra inputs


def test_descriptor_metadata_carries_both_key_sets() -> None:
    provider = NativeProvider(weather)
    d = provider.descriptor
    assert (d.name, d.version, d.provider) == ("weather.get", "2.1", ProviderKind.NATIVE)
    assert d.metadata["desc"] == d.metadata["description"] == "Weather for a city"
    assert d.metadata["input_schema"] == d.metadata["schema"]
    assert ", " not in d.metadata["input_schema"]  # compact JSON
    assert _metadata_json(provider, "input_schema") == weather.input_schema
    assert _metadata_json(provider, "output_schema") == weather.output_schema


def test_bare_decorator_takes_name_and_docstring() -> None:
    assert isinstance(shout, CapabilityFunction)
    assert (shout.name, shout.version, shout.description) == ("shout", "1.0", "Upper-case a text.")


def test_decorated_function_remains_callable() -> None:
    assert shout("ab", times=2) == "ABAB"
    assert shout.__name__ == "shout" and "Upper-case" in (shout.__doc__ or "")
    forecast = asyncio.run(weather("Oslo"))
    assert forecast == Forecast(city="Oslo", celsius=21.5, tags=["1"])


def test_signatures_that_cannot_take_json_are_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"capability 'star': \*args cannot take JSON input"):

        @capability("star")
        def star(*args: int) -> None: ...

    with pytest.raises(TypeError, match="capability 'opaque': unusable parameter types"):

        @capability("opaque")
        def opaque(thing: Opaque) -> None: ...

    with pytest.raises(TypeError, match="cannot read the signature"):

        @capability("unresolved")
        def unresolved(x: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821


# -- running through the broker ----------------------------------------------------------------


async def test_async_capability_input_and_output_as_json() -> None:
    async with ActionBroker() as broker:
        broker.register(NativeProvider(weather))
        result = await broker.invoke(
            ActionCall("weather.get", b'{"city": "Oslo", "days": 3, "units": "f"}')
        )
        assert result.status is ActionStatus.OK
        assert json.loads(result.output) == {"city": "Oslo", "celsius": 70.7, "tags": ["3"]}


async def test_invalid_params_name_the_field() -> None:
    async with ActionBroker() as broker:
        broker.register(NativeProvider(weather))
        for payload, field in (
            (b'{"days": 2}', "$.city"),
            (b'{"city": "Oslo", "days": "many"}', "$.days"),
            (b'{"city": "Oslo", "wind": true}', "$.wind"),
            (b'["Oslo"]', "$"),
            (b"{not json", "$"),
        ):
            result = await broker.invoke(ActionCall("weather.get", payload))
            assert result.status is ActionStatus.ERROR, payload
            assert result.error is not None and result.error.code == ErrorCode.INVALID_PARAMS
            assert result.error.details["field"] == field, payload
            assert result.error.message.startswith(f"{field}: "), result.error.message


async def test_all_field_problems_are_listed() -> None:
    async with ActionBroker() as broker:
        broker.register(NativeProvider(weather))
        result = await broker.invoke(ActionCall("weather.get", b'{"days": "x"}'))
        assert result.error is not None
        assert "$.city: Field required" in result.error.message
        assert "$.days: Input should be a valid integer" in result.error.message


async def test_sync_function_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()

    @capability("where")
    def where() -> int:
        return threading.get_ident()

    @capability("where.async")
    async def where_async() -> int:
        return threading.get_ident()

    async with ActionBroker() as broker:
        broker.register(NativeProvider(where))
        broker.register(NativeProvider(where_async))
        sync_thread = json.loads((await broker.invoke(ActionCall("where"))).output)
        async_thread = json.loads((await broker.invoke(ActionCall("where.async"))).output)
        assert sync_thread != loop_thread
        assert async_thread == loop_thread


async def test_exceptions_become_capability_error_with_the_message() -> None:
    @capability("fails")
    def fails(n: int) -> int:
        raise ZeroDivisionError(f"cannot divide {n} by zero")

    @capability("fails.quietly")
    async def fails_quietly() -> None:
        raise KeyError

    @capability("refuses")
    async def refuses(query: str) -> str:
        raise CapabilityError("INVALID_QUERY", "empty query")

    async with ActionBroker() as broker:
        for fn in (fails, fails_quietly, refuses):
            broker.register(NativeProvider(fn))
        result = await broker.invoke(ActionCall("fails", b'{"n": 4}'))
        assert result.status is ActionStatus.ERROR and result.error is not None
        assert result.error.code == ErrorCode.CAPABILITY_ERROR
        assert result.error.message == "cannot divide 4 by zero"
        quiet = await broker.invoke(ActionCall("fails.quietly"))
        assert quiet.error is not None and quiet.error.message == "KeyError"
        refused = await broker.invoke(ActionCall("refuses", b'{"query": ""}'))
        assert refused.error is not None and refused.error.code == "INVALID_QUERY"


async def test_bytes_pass_through_and_mismatched_returns_are_reported() -> None:
    @capability("raw")
    async def raw() -> bytes:
        return b"\x00\xff"

    @capability("liar")
    async def liar() -> int:
        return "not an int"  # type: ignore[return-value]

    @capability("untyped")
    async def untyped():  # type: ignore[no-untyped-def]
        return {"a": [1, 2]}

    async with ActionBroker() as broker:
        for fn in (raw, liar, untyped):
            broker.register(NativeProvider(fn))
        assert raw.output_schema is None
        assert (await broker.invoke(ActionCall("raw"))).output == b"\x00\xff"
        lie = await broker.invoke(ActionCall("liar"))
        assert lie.error is not None and lie.error.code == ErrorCode.CAPABILITY_ERROR
        assert "does not serialize" in lie.error.message
        assert json.loads((await broker.invoke(ActionCall("untyped"))).output) == {"a": [1, 2]}


async def test_action_call_parameter_and_extra_keywords() -> None:
    @capability("odd")
    def odd(schema: str, _id: int, call: ActionCall, **rest: Any) -> dict[str, Any]:
        return {"schema": schema, "id": _id, "call": call.id, "rest": rest}

    async with ActionBroker() as broker:
        broker.register(NativeProvider(odd))
        result = await broker.invoke(
            ActionCall("odd", b'{"schema": "s", "_id": "7", "more": 1}', id="c-1")
        )
        assert json.loads(result.output) == {
            "schema": "s",
            "id": 7,
            "call": "c-1",
            "rest": {"more": 1},
        }


async def test_empty_payload_is_an_empty_object() -> None:
    async with ActionBroker() as broker:
        broker.register(NativeProvider(shout, name="shout.again", version="3"))
        result = await broker.invoke(ActionCall("shout.again", b""))
        assert result.error is not None and result.error.details["field"] == "$.text"
        assert broker.describe("shout.again").version == "3"  # type: ignore[union-attr]


# -- contributions ---------------------------------------------------------------------------


def test_contribution_record_from_a_capability_function() -> None:
    record = weather.contribution
    assert isinstance(record, Capability)
    assert (record.name, record.version, record.description) == (
        "weather.get",
        "2.1",
        "Weather for a city",
    )
    assert record.handler is weather
    assert record.input_schema == weather.input_schema
    assert record.output_schema == weather.output_schema


async def test_register_contribution_of_a_capability_function() -> None:
    async with ActionBroker() as broker:
        provider = broker.register_contribution(weather.contribution)
        assert provider.validates_input
        result = await broker.invoke(ActionCall("weather.get", b'{"city": "Rome"}'))
        assert json.loads(result.output)["city"] == "Rome"


def greet(name: str = "world") -> str:
    """The plugin-hello style: a plain function with a hand-written record."""
    return f"Hello, {name}!"


async def test_register_contribution_of_a_hand_written_record() -> None:
    record = Capability(
        name="hello.greet",
        description="Greet someone by name",
        handler=greet,
        input_schema={
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 5}},
        },
        output_schema={"type": "string"},
    )
    async with ActionBroker() as broker:
        provider = broker.register_contribution(record)
        d = provider.descriptor
        assert d.metadata["desc"] == "Greet someone by name"
        assert json.loads(d.metadata["schema"]) == record.input_schema  # advertised as written
        assert not provider.validates_input  # so the broker checks the written schema too
        ok = await broker.invoke(ActionCall("hello.greet", b'{"name": "Ada"}'))
        assert ok.output == b'"Hello, Ada!"'
        default = await broker.invoke(ActionCall("hello.greet"))
        assert default.output == b'"Hello, world!"'
        too_long = await broker.invoke(ActionCall("hello.greet", b'{"name": "Bartholomew"}'))
        assert too_long.error is not None and too_long.error.code == ErrorCode.INVALID_PARAMS
        assert too_long.error.details["field"] == "$.name"


async def test_register_contributions_from_a_host_plugin(
    loom_host: Any, register_plugin: Any
) -> None:
    from loom import hookimpl

    class Plugin:
        @hookimpl
        def loom_capabilities(self) -> list[Capability]:
            return [
                shout.contribution,
                Capability(name="text.upper", handler=lambda text: text.upper()),
            ]

    register_plugin(Plugin(), "texts")
    async with ActionBroker() as broker:
        providers = broker.register_contributions(loom_host.capabilities())
        assert [p.descriptor.name for p in providers] == ["shout", "text.upper"]
        lam = await broker.invoke(ActionCall("text.upper", b'{"text": "abc"}'))
        assert lam.output == b'"ABC"'
        assert (await broker.invoke(ActionCall("shout", b'{"text": "x"}'))).output == b'"X"'
