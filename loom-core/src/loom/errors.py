"""Errors raised by Loom.

Every error derives from :class:`LoomError`. Where an error resembles a builtin, it also
derives from that builtin, so ``except ValueError`` keeps working for callers that do not
know about Loom.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "AgentExistsError",
    "AgentNotFoundError",
    "InvalidEventError",
    "InvalidTopicError",
    "LoomError",
    "PluginError",
    "PluginLoadError",
    "ProtocolError",
]


class LoomError(Exception):
    """Root of every error Loom raises."""


class InvalidTopicError(LoomError, ValueError):
    """A topic or topic pattern breaks the topic grammar.

    Attributes:
        topic: the offending topic or pattern.
        reason: what is wrong with it, in words.
    """

    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(f"invalid topic {topic!r}: {reason}")


class InvalidEventError(LoomError, ValueError, TypeError):
    """An event field holds a value outside its contract (priority 101, a str payload).

    It is both a ``ValueError`` and a ``TypeError``, since either can be the cause.
    """


class ProtocolError(LoomError, ValueError):
    """Bytes from outside the process do not decode to the expected ``loom.v1`` message.

    Attributes:
        message_type: the protobuf message that was expected, e.g. ``"loom.v1.Event"``.
    """

    def __init__(self, message_type: str, detail: str) -> None:
        self.message_type = message_type
        super().__init__(f"cannot decode {message_type}: {detail}")


class PluginError(LoomError):
    """A plugin failed to load or failed inside a hook.

    Attributes:
        plugin: the name the plugin is registered (or was to be registered) under.
        hook: the hook that failed, or ``None`` for a failure while loading.
    """

    def __init__(self, plugin: str, message: str, *, hook: str | None = None) -> None:
        self.plugin = plugin
        self.hook = hook
        where = f"plugin {plugin!r}" + (f" in hook {hook}" if hook else "")
        super().__init__(f"{where}: {message}")


class PluginLoadError(PluginError, ImportError):
    """A plugin's entry point could not be loaded or registered."""


class AgentError(LoomError):
    """An agent operation was refused (a subscription it already has, its private topic, ...)."""


class AgentNotFoundError(AgentError, KeyError):
    """No agent has this id."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id!r} not found")

    def __str__(self) -> str:  # KeyError would quote the message again
        return str(self.args[0])


class AgentExistsError(AgentError, ValueError):
    """An agent with this id already exists."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent {agent_id!r} already exists")
