"""Endpoint probing: resolve, TCP, TLS (chain, server name, pins), then the claimed protocol."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from openvpp.integration.probe import protocols, transport
from openvpp.integration.probe.model import Outcome, ProbeFailure, Step, Target
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock

__all__ = ["Outcome", "Prober", "Step", "Target"]

T = TypeVar("T")


class Prober:
    """Runs the probe steps in order and records each; the first failure ends the probe."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        allow_private_addresses: bool,
        clock_us: Clock = clock.system,
    ) -> None:
        self.timeout = timeout_seconds
        self.allow_private = allow_private_addresses
        self.clock_us = clock_us

    async def probe(self, target: Target) -> Outcome:
        outcome = Outcome(probed_at_us=self.clock_us())

        async def step(name: str, work: Callable[[], Awaitable[T]], detail: Callable[[T], str]) -> T:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout):
                    result = await work()
            except TimeoutError:
                failure = ProbeFailure("TIMEOUT", f"{name} took longer than {self.timeout:g}s")
                outcome.steps.append(Step(name, False, failure.detail, _ms(started)))
                raise failure from None
            except ProbeFailure as failure:
                outcome.steps.append(Step(name, False, failure.detail, _ms(started)))
                raise
            outcome.steps.append(Step(name, True, detail(result), _ms(started)))
            return result

        try:
            address = await step("resolve", lambda: transport.resolve(target, self.allow_private), str)
            _, writer = await step(
                "tcp", lambda: transport.connect_tcp(address, target.port), lambda _: f"{address}:{target.port}"
            )
            try:
                peer = await step(
                    "tls",
                    lambda: transport.handshake(writer, target),
                    lambda p: f"{p.tls_version} {target.server_name}",
                )
            finally:
                writer.close()
            pin = transport.spki_pin(peer.leaf)
            outcome.spki_pins = [pin]
            outcome.tls_version = peer.tls_version
            outcome.peer_subject = peer.leaf.subject.rfc4514_string()
            outcome.peer_not_after_us = int(peer.leaf.not_valid_after_utc.timestamp() * 1_000_000)
            await step("pins", _now(lambda: transport.check_pins(target, pin)), lambda _: pin)
            check = protocols.CHECKS[target.protocol]
            name = protocols.STEP_NAMES[target.protocol]
            outcome.capabilities = await step(
                name, lambda: check(target, address, self.timeout), lambda found: f"{len(found)} capabilities"
            )
        except ProbeFailure as failure:
            outcome.failure_reason = failure.reason
            outcome.failure_detail = failure.detail
        return outcome


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _now(work: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        work()

    return run
