"""Whether a capability's next call may run inline, on the caller's thread, from its observed cost.

Handing a call to a worker thread and back costs 45-90 µs here, more than a small
guest call itself (3-10 µs on a reused instance, about 60 on a fresh Store). So a
capability of a cap-v1 plugin without writable directories whose calls are seen to be tiny
runs on the caller's thread, the event loop included, on a leash: its deadline is cut to
the policy's ``inline_max_ms``. For a fresh Store the seen cost and the leash cover the
whole call: the Store, instantiation with its start function and ``_initialize``, the call
and the output. A call the leash stops is re-run on a worker thread within the rest of its
own deadline (it can run again: a fresh Store keeps nothing, a reused instance is
stateless-and-trusted, and no directory is writable), and the capability goes
back to the workers until it has again been seen to be tiny for a longer streak. So do
its calls after a few inline ones in a row that were not tiny (one alone is often the
machine's doing: a preempted thread, a page fault).

The counters are plain attributes, updated from the loop and from worker threads without a
lock: a lost update only delays or hastens a switch, it never lifts a bound (every inline
call is still under the leash, fuel and the memory cap).
"""

from __future__ import annotations

__all__ = [
    "DEMOTE_AFTER",
    "FORGIVE_AFTER",
    "PROMOTE_AFTER",
    "TINY_FRESH_S",
    "TINY_S",
    "CostWatch",
]

#: A call that takes at most this long (in the guest, seconds) counts as tiny.
TINY_S = 100e-6
#: The same for a fresh Store per call, whose fixed part (the Store, its WASI context and
#: preopened directories, the instance) alone costs 60-130 µs here.
TINY_FRESH_S = 250e-6
#: Tiny calls in a row on the workers before a capability first goes inline.
PROMOTE_AFTER = 16
#: Inline calls in a row that are not tiny before a capability goes back to the workers.
DEMOTE_AFTER = 4
#: The streak doubles after each demotion, up to this many doublings.
_MAX_BACKOFF = 10
#: Tiny inline calls that forgive one demotion (a rare slow call must not add up).
FORGIVE_AFTER = 1024


class CostWatch:
    """One capability's observed cost, and whether its calls now run inline.

    Args:
        tiny_s: the longest call that counts as tiny, in seconds.

    Attributes:
        tiny_s: the longest call that counts as tiny, in seconds.
        inline: the next call runs on the caller's thread, on the leash.
        streak: tiny calls in a row seen on the workers.
        slow: inline calls in a row that were not tiny.
        demotions: times it was sent back to the workers, less one per
            :data:`FORGIVE_AFTER` tiny inline calls.
    """

    __slots__ = ("demotions", "good", "inline", "slow", "streak", "tiny_s")

    def __init__(self, tiny_s: float = TINY_S) -> None:
        self.tiny_s = tiny_s
        self.inline = False
        self.streak = 0
        self.slow = 0
        self.good = 0
        self.demotions = 0

    def saw(self, seconds: float) -> None:
        """A call on a worker took ``seconds`` (in the guest, whatever its outcome)."""
        if seconds > self.tiny_s:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= PROMOTE_AFTER << min(self.demotions, _MAX_BACKOFF):
            self.inline = True

    def saw_inline(self, seconds: float) -> None:
        """An inline call took ``seconds``; a few in a row not tiny send the next ones back."""
        if seconds <= self.tiny_s:
            self.slow = 0
            self.good += 1
            if self.good >= FORGIVE_AFTER:
                self.good = 0
                self.demotions = max(0, self.demotions - 1)
            return
        self.slow += 1
        if self.slow >= DEMOTE_AFTER:
            self.demote()

    def demote(self) -> None:
        """Send the capability's calls back to the workers (the leash stopped one)."""
        self.inline = False
        self.streak = 0
        self.slow = 0
        self.good = 0
        self.demotions += 1
