"""The remote agent of the bridge's two-process bench scenarios, run by ``loom_bridge._bench``.

``python -m loom_bridge._bench_child push|publish ADDRESS BATCH`` connects a
:class:`~loom_bridge._link.BridgeLink` as agent ``bench`` to the bridge at ``ADDRESS``
(``delivery_batch`` or ``publish_batch`` set to ``BATCH``), prints ``ready`` once its stream
is open and then follows commands, one per line, on stdin:

- ``expect T`` (push): print ``got T`` once ``T`` events in all have arrived on the bench
  topic, the last of them checked to be the ``T``-th one published (its ``seq``);
- ``publish FIRST SIZE`` (publish): publish :func:`~loom.bench.bench_event` ``FIRST`` to
  ``FIRST + SIZE - 1`` on the bench topic, then print ``sent FIRST SIZE``.

End of stdin (the parent closed it, or died) stops the link and ends the process, so the
child never outlives its parent's run. A bad command or events out of order print
``error ...`` and exit with status 1; any other failure leaves its traceback on stderr.
"""

from __future__ import annotations

import asyncio
import sys

from loom import Event
from loom.bench import bench_event

__all__: list[str] = []

#: The topic every bridge bench scenario publishes on.
TOPIC = "bench.bridge.tick"


class _Counter:
    """Counts deliveries and answers ``expect T`` once ``T`` have arrived."""

    def __init__(self) -> None:
        self.received = 0
        self.target = 0
        self.failure: str | None = None

    async def on_delivery(self, topic: str, event: Event) -> None:
        self.received += 1
        if self.received == self.target:
            self._reached(event)

    def expect(self, target: int) -> None:
        if target <= self.received:
            # The events overtook the command: answer now, the count is what matters.
            self.target = target
            _say(f"got {target}")
            return
        self.target = target

    def _reached(self, event: Event) -> None:
        seq = event.metadata.get("seq")
        if seq != str(self.target - 1):
            self.failure = f"event {self.target} arrived with seq {seq!r}, out of order"
            _say(f"error {self.failure}")
            return
        _say(f"got {self.target}")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _stdin() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def _main(mode: str, address: str, batch: int) -> int:
    from loom.v1 import bridge_pb2
    from loom_bridge._client_config import ClientConfig
    from loom_bridge._link import BridgeLink

    counter = _Counter()
    topics = (TOPIC,) if mode == "push" else ()

    def registration() -> bridge_pb2.AgentRegisterRequest:
        return bridge_pb2.AgentRegisterRequest(agent_id="bench", subscribed_topics=topics)

    link = BridgeLink(
        "bench",
        ClientConfig(
            address=address,
            outbound_queue=1024,
            delivery_batch=batch if mode == "push" else 1,
            publish_batch=batch if mode == "publish" else 1,
        ),
        registration=registration,
        on_delivery=counter.on_delivery,
    )
    commands = await _stdin()
    try:
        await link.start()
        _say("ready")
        while line := await commands.readline():
            if counter.failure is not None:
                return 1
            words = line.decode().split()
            if mode == "push" and len(words) == 2 and words[0] == "expect":
                counter.expect(int(words[1]))
            elif mode == "publish" and len(words) == 3 and words[0] == "publish":
                first, size = int(words[1]), int(words[2])
                for i in range(first, first + size):
                    await link.publish(TOPIC, bench_event(i))
                _say(f"sent {first} {size}")
            else:
                _say(f"error bad command for {mode}: {line!r}")
                return 1
        return 0 if counter.failure is None else 1
    finally:
        await link.stop()


def main(argv: list[str]) -> int:
    """Run the child; ``argv`` is ``[push|publish, ADDRESS, BATCH]``."""
    if len(argv) != 3 or argv[0] not in {"push", "publish"} or not argv[2].isdigit():
        print(
            f"usage: python -m loom_bridge._bench_child push|publish ADDRESS BATCH; got {argv}",
            file=sys.stderr,
        )
        return 2
    # A failure leaves its traceback on stderr and status 1, which the parent reports.
    return asyncio.run(_main(argv[0], argv[1], int(argv[2])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
