"""Several SMTP relays (DIGEST_SMTP_HOSTS): per-relay pools and rates, failover between them.

Each relay has its own connections (``pool``) and its own rate; DIGEST_SEND_RATE still caps
the total. The send loop sees one lane per connection slot, each at home on one relay. A
message goes through its lane's relay unless that relay refuses it before DATA (no connection,
TLS or AUTH trouble, a 4xx/5xx greeting, MAIL FROM refused, a 421, a drop before DATA): nothing
of it reached the relay, so it is sent through the next relay at once, and the sick one rests
(REST, doubling) before it is tried again. An answer after DATA, or a timeout waiting for it,
concerns that recipient and is never sent elsewhere: it could make a second copy. Its retry
(the loop's) goes to the same relay, which may know the Message-ID already. Only when
every relay refuses does the lane report what one relay would (an error, or its reply), so the
loop's circuit breaker and the "cannot connect" error work as with one relay.

No aiosmtplib here: the connections come from ``transport.SmtpLane`` (the seam).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from digest.config import SmtpRelay
from digest.errors import DeliveryError

if TYPE_CHECKING:
    from digest.send.transport import Reply

log = logging.getLogger("digest.send")

# Pauses of a relay after 1, 2, 3, 4+ refusals in a row (seconds); any answer ends the rest.
REST = (2.0, 10.0, 60.0, 300.0)


class RelayRefused(DeliveryError):
    """The relay refused the session or the sender: any other relay may take the message."""


class Connection(Protocol):
    async def send(
        self, sender: str, to: str, message: bytes, *, retries: Sequence[float] | None = None
    ) -> Reply: ...

    async def close(self) -> None: ...


class RateLimiter:
    """At most ``per_second`` messages a second (DIGEST_SEND_RATE, or one relay's ``rate=``)."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_slot = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class Relay:
    def __init__(self, spec: SmtpRelay, connect: Callable[[SmtpRelay], Connection]) -> None:
        self.spec = spec
        self.connections = [connect(spec) for _ in range(spec.pool)]
        self.idle: asyncio.Queue[Connection] = asyncio.Queue()
        for connection in self.connections:
            self.idle.put_nowait(connection)
        self.limiter = RateLimiter(spec.rate)
        self.refusals = 0  # in a row
        self.resting_until = 0.0
        self.sent = 0

    def rest(self, why: object) -> None:
        self.refusals += 1
        pause = REST[min(self.refusals, len(REST)) - 1]
        self.resting_until = time.monotonic() + pause
        log.warning("relay %s refused (%s): resting %.0f s", self.spec, why, pause)

    def answered(self) -> None:
        self.refusals = 0
        self.resting_until = 0.0
        self.sent += 1


class RelaySet:
    """The relays of DIGEST_SMTP_HOSTS (or the one of DIGEST_SMTP_HOST) and their lanes."""

    def __init__(
        self,
        specs: Sequence[SmtpRelay],
        total: RateLimiter,
        connect: Callable[[SmtpRelay], Connection],
    ) -> None:
        self.relays = [Relay(spec, connect) for spec in specs]
        self.total = total
        # recipient -> the relay whose answer to its DATA never came: retried there only
        self.pinned: dict[str, Relay] = {}
        self.lanes = [
            RelayLane(self, home) for home, spec in enumerate(specs) for _ in range(spec.pool)
        ]

    def order(self, home: int) -> list[Relay]:
        """Where to try a message of a lane at home on ``home``: the healthy relays (its own
        first, then the next ones in turn), then the resting ones, the soonest rested first."""
        now = time.monotonic()
        turn = self.relays[home:] + self.relays[:home]
        healthy = [relay for relay in turn if relay.resting_until <= now]
        resting = sorted(
            (relay for relay in turn if relay.resting_until > now), key=lambda r: r.resting_until
        )
        return healthy + resting

    async def _attempt(
        self, relay: Relay, sender: str, to: str, message: bytes, last: bool
    ) -> Reply:
        connection = await relay.idle.get()
        try:
            # The relay's slot, then the total's. Not one slot free in both: a slot taken far
            # ahead for a slow relay would hold up the fast ones. The total stays exact, a
            # relay's rate exact on average.
            await relay.limiter.wait()
            await self.total.wait()
            # Retrying the connection is worth it only when no other relay is left.
            return await connection.send(sender, to, message, retries=None if last else ())
        finally:
            relay.idle.put_nowait(connection)

    async def send(self, home: int, sender: str, to: str, message: bytes) -> Reply:
        pinned = self.pinned.pop(to, None)
        if pinned is not None:
            return await self._send_pinned(pinned, sender, to, message)
        order = self.order(home)
        refused: list[RelayRefused] = []
        for n, relay in enumerate(order):
            last = n == len(order) - 1
            try:
                reply = await self._attempt(relay, sender, to, message, last)
            except RelayRefused as exc:
                relay.rest(exc.message)
                refused.append(exc)
                if last:
                    raise self._all_refused(refused) from None
                continue
            if not reply.failover:
                relay.answered()
                if reply.stage == "connection" and len(self.relays) > 1:
                    self.pinned[to] = relay  # lost during DATA: the relay may have taken it
                return reply
            relay.rest(reply)
            if last:
                return reply  # what one relay would have said: the loop defers or trips
        raise AssertionError("a relay set without relays")

    async def _send_pinned(self, relay: Relay, sender: str, to: str, message: bytes) -> Reply:
        """The retry of a message lost during DATA: through the same relay or not at all (a
        deferral for now), however healthy the others are."""
        from digest.send.transport import Reply  # at run time: transport imports this module

        try:
            reply = await self._attempt(relay, sender, to, message, True)
        except RelayRefused as exc:
            relay.rest(exc.message)
            self.pinned[to] = relay
            why = f"4.4.1 {exc.message}; kept for {relay.spec}, which may have it already"
            return Reply(451, why, "mail")
        if reply.failover:
            relay.rest(reply)
            self.pinned[to] = relay
        else:
            relay.answered()
            if reply.stage == "connection":
                self.pinned[to] = relay
        return reply

    def _all_refused(self, refused: list[RelayRefused]) -> RelayRefused:
        if len(self.relays) == 1:
            return refused[-1]
        return RelayRefused(
            f"every relay of DIGEST_SMTP_HOSTS refused: {'; '.join(e.message for e in refused)}",
            hint=refused[-1].hint,
        )

    async def aclose(self) -> None:
        await asyncio.gather(*(c.close() for relay in self.relays for c in relay.connections))


class RelayLane:
    """One of the send loop's lanes: a slot at home on one relay, free to fail over."""

    def __init__(self, relays: RelaySet, home: int) -> None:
        self.relays = relays
        self.home = home

    async def send(self, sender: str, to: str, message: bytes) -> Reply:
        return await self.relays.send(self.home, sender, to, message)

    async def close(self) -> None:
        return None  # the connections belong to the relays (RelaySet.aclose)
