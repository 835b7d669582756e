"""The endpoint probe against real TLS endpoints: every protocol it speaks and every way it fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openvpp.integration.probe import Outcome, Prober, Target
from openvpp.v1 import integration_pb2 as pb
from tests.integration.endpoint_servers import (
    PartnerPki,
    csms,
    free_port,
    grpc_endpoint,
    https_server,
    openadr_programs,
)

GRPC = pb.ENDPOINT_PROTOCOL_OPENVPP_GRPC


@pytest.fixture
def pki(tmp_path: Path) -> PartnerPki:
    return PartnerPki(tmp_path / "utility-ca")


def prober(**overrides: object) -> Prober:
    options: dict[str, object] = {"timeout_seconds": 5.0, "allow_private_addresses": True} | overrides
    return Prober(**options)  # type: ignore[arg-type]


def target(pki: PartnerPki, url: str, protocol: int, **overrides: object) -> Target:
    fields: dict[str, object] = {
        "url": url,
        "protocol": protocol,
        "server_name": "localhost",
        "trust_anchors_pem": pki.anchors_pem,
    } | overrides
    return Target(**fields)  # type: ignore[arg-type]


def failed(outcome: Outcome, reason: str, step: str) -> None:
    assert not outcome.passed
    assert outcome.failure_reason == reason, outcome
    assert outcome.steps[-1].name == step, outcome.steps
    assert not outcome.steps[-1].passed
    assert all(s.passed for s in outcome.steps[:-1])


async def test_grpc_endpoint_health_and_reflection(pki: PartnerPki) -> None:
    server = pki.server()
    async with grpc_endpoint(server) as port:
        outcome = await prober().probe(target(pki, f"https://localhost:{port}", GRPC))
    assert outcome.passed, outcome
    assert [s.name for s in outcome.steps] == ["resolve", "tcp", "tls", "pins", "grpc"]
    assert outcome.spki_pins == [server.pin]
    assert "grpc.health:SERVING" in outcome.capabilities
    assert "grpc.service:grpc.health.v1.Health" in outcome.capabilities
    assert outcome.tls_version.startswith("TLSv1.")
    assert "localhost" in outcome.peer_subject


async def test_grpc_endpoint_without_reflection_fails(pki: PartnerPki) -> None:
    async with grpc_endpoint(pki.server(), with_reflection=False) as port:
        outcome = await prober().probe(target(pki, f"https://localhost:{port}", GRPC))
    failed(outcome, "GRPC_REFLECTION_FAILED", "grpc")
    assert outcome.spki_pins, "pins are recorded even when the protocol step fails"


@pytest.mark.parametrize(
    ("protocol", "offered", "boot"),
    [
        (pb.ENDPOINT_PROTOCOL_OCPP_201, ["ocpp2.0.1"], "ocpp.boot:Accepted"),
        (pb.ENDPOINT_PROTOCOL_OCPP_16, ["ocpp1.6"], "ocpp.boot:Pending"),
        (pb.ENDPOINT_PROTOCOL_OCPP_16, ["ocpp2.0.1", "ocpp1.6"], "ocpp.boot:Pending"),
    ],
)
async def test_ocpp_subprotocol_and_boot_notification(
    pki: PartnerPki, tmp_path: Path, protocol: int, offered: list[str], boot: str
) -> None:
    async with csms(pki.server(), tmp_path, offered) as port:
        outcome = await prober().probe(target(pki, f"wss://localhost:{port}/ocpp", protocol))
    assert outcome.passed, outcome
    assert boot in outcome.capabilities
    assert outcome.steps[-1].name == "ocpp"


async def test_ocpp_version_the_csms_does_not_speak_is_refused(pki: PartnerPki, tmp_path: Path) -> None:
    async with csms(pki.server(), tmp_path, ["ocpp2.0.1"]) as port:
        outcome = await prober().probe(target(pki, f"wss://localhost:{port}/ocpp", pb.ENDPOINT_PROTOCOL_OCPP_16))
    failed(outcome, "OCPP_HANDSHAKE_FAILED", "ocpp")
    assert "subprotocol" in outcome.failure_detail


async def test_a_websocket_server_that_ignores_the_subprotocol_is_refused(pki: PartnerPki, tmp_path: Path) -> None:
    async with csms(pki.server(), tmp_path, None) as port:
        outcome = await prober().probe(target(pki, f"wss://localhost:{port}/ocpp", pb.ENDPOINT_PROTOCOL_OCPP_201))
    failed(outcome, "OCPP_SUBPROTOCOL_REFUSED", "ocpp")


async def test_openadr3_programs(pki: PartnerPki, tmp_path: Path) -> None:
    routes = {"/openadr3/programs": (200, openadr_programs("Residential DR", "Peak Saver"))}
    with https_server(pki.server(), tmp_path, routes) as port:
        outcome = await prober().probe(
            target(pki, f"https://localhost:{port}/openadr3", pb.ENDPOINT_PROTOCOL_OPENADR_3)
        )
    assert outcome.passed, outcome
    assert outcome.capabilities == [
        "openadr3.programs:2",
        "openadr3.program:Residential DR",
        "openadr3.program:Peak Saver",
    ]


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b'[{"id": "p1", "programName": "x"}]', "OPENADR_SCHEMA"),  # no createdDateTime
        (200, b'{"programName": "not a list"}', "OPENADR_SCHEMA"),
        (200, b"not json", "OPENADR_SCHEMA"),
        (401, b"{}", "OPENADR_AUTH_REQUIRED"),
        (500, b"{}", "HTTP_STATUS"),
    ],
)
async def test_openadr3_bad_answers(pki: PartnerPki, tmp_path: Path, status: int, body: bytes, reason: str) -> None:
    with https_server(pki.server(), tmp_path, {"/programs": (status, body)}) as port:
        outcome = await prober().probe(target(pki, f"https://localhost:{port}", pb.ENDPOINT_PROTOCOL_OPENADR_3))
    failed(outcome, reason, "openadr3")


async def test_https_health_path(pki: PartnerPki, tmp_path: Path) -> None:
    routes = {"/healthz": (204, b""), "/broken": (503, b"")}
    with https_server(pki.server(), tmp_path, routes) as port:
        url = f"https://localhost:{port}"
        ok = await prober().probe(target(pki, url, pb.ENDPOINT_PROTOCOL_HTTPS, health_path="/healthz"))
        bad = await prober().probe(target(pki, url, pb.ENDPOINT_PROTOCOL_HTTPS, health_path="/broken"))
    assert ok.passed, ok
    assert ok.capabilities == ["https.status:204"]
    failed(bad, "HTTP_STATUS", "https")


async def test_tls_chain_to_an_unknown_ca_is_untrusted(pki: PartnerPki, tmp_path: Path) -> None:
    other = PartnerPki(tmp_path / "other-ca")
    async with grpc_endpoint(pki.server()) as port:
        outcome = await prober().probe(target(other, f"https://localhost:{port}", GRPC))
    failed(outcome, "TLS_UNTRUSTED", "tls")
    assert not outcome.spki_pins


async def test_tls_server_name_must_match(pki: PartnerPki) -> None:
    async with grpc_endpoint(pki.server(("localhost",))) as port:
        outcome = await prober().probe(
            target(pki, f"https://localhost:{port}", GRPC, server_name="vtn.utility.example")
        )
    failed(outcome, "TLS_NAME_MISMATCH", "tls")


async def test_expired_certificate(pki: PartnerPki) -> None:
    async with grpc_endpoint(pki.server(days=10, age_days=20)) as port:
        outcome = await prober().probe(target(pki, f"https://localhost:{port}", GRPC))
    failed(outcome, "TLS_CERT_EXPIRED", "tls")


async def test_pins_must_match_when_given(pki: PartnerPki) -> None:
    server = pki.server()
    async with grpc_endpoint(server) as port:
        url = f"https://localhost:{port}"
        wrong = await prober().probe(target(pki, url, GRPC, expected_spki_pins=("sha256/" + "A" * 43 + "=",)))
        right = await prober().probe(target(pki, url, GRPC, expected_spki_pins=(server.pin,)))
    failed(wrong, "PIN_MISMATCH", "pins")
    assert right.passed, right


async def test_nothing_listening(pki: PartnerPki) -> None:
    outcome = await prober().probe(target(pki, f"https://localhost:{await free_port()}", GRPC))
    failed(outcome, "TCP_CONNECT_FAILED", "tcp")


async def test_plain_tcp_that_never_speaks_tls_times_out(pki: PartnerPki) -> None:
    accepted: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: accepted.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        outcome = await prober(timeout_seconds=0.5).probe(target(pki, f"https://localhost:{port}", GRPC))
        for writer in accepted:
            writer.close()
    failed(outcome, "TIMEOUT", "tls")


async def test_private_addresses_are_refused_by_default(pki: PartnerPki) -> None:
    async with grpc_endpoint(pki.server()) as port:
        outcome = await prober(allow_private_addresses=False).probe(target(pki, f"https://localhost:{port}", GRPC))
    failed(outcome, "ADDRESS_NOT_ALLOWED", "resolve")


async def test_unresolvable_name(pki: PartnerPki) -> None:
    outcome = await prober().probe(target(pki, "https://no-such-host.invalid:443", GRPC))
    failed(outcome, "RESOLVE_FAILED", "resolve")


def test_outcome_round_trips_through_storage() -> None:
    outcome = Outcome(probed_at_us=5, spki_pins=["sha256/x"], capabilities=["a"], failure_reason="TIMEOUT")
    assert Outcome.from_json(outcome.to_json()) == outcome
