"""Endpoint registration and validation over mTLS: probes stored with the
endpoint, re-probed on demand, and every refusal with its exact status and
nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from openvpp.integration import ca
from openvpp.v1 import integration_pb2 as pb
from tests.integration.endpoint_servers import PartnerPki, csms, grpc_endpoint, https_server
from tests.integration.mtls import Fabric, integration
from tests.rpc import expect_error

GRPC = pb.ENDPOINT_PROTOCOL_OPENVPP_GRPC
HTTPS = pb.ENDPOINT_PROTOCOL_HTTPS


@pytest.fixture
def pki(tmp_path: Path) -> PartnerPki:
    return PartnerPki(tmp_path / "partner-ca")


def request(pki: PartnerPki, name: str, url: str, protocol: int = GRPC, **fields: Any) -> pb.RegisterEndpointRequest:
    return pb.RegisterEndpointRequest(
        name=name,
        url=url,
        protocol=protocol,  # type: ignore[arg-type]
        trust_anchors_pem=pki.anchors_pem,
        **fields,
    )


async def all_endpoints(fabric: Fabric) -> list[str]:
    async with fabric.operator() as channel:
        listed = await integration(channel).ListEndpoints(pb.ListEndpointsRequest())
    return [e.endpoint_id for e in listed.endpoints]


async def test_a_utility_registers_a_grpc_endpoint_that_is_validated(fabric: Fabric, pki: PartnerPki) -> None:
    utility = await fabric.onboard(ca.Role.UTILITY, "pge")
    server = pki.server()
    async with grpc_endpoint(server) as port, fabric.channel(utility) as channel:
        stub = integration(channel)
        registered = (
            await stub.RegisterEndpoint(
                request(pki, "dr-gateway", f"https://localhost:{port}", programs=["nem", "dr-evening"])
            )
        ).endpoint
        assert registered.endpoint_id == "pge/dr-gateway"
        assert registered.state == pb.ENDPOINT_STATE_VALIDATED
        assert registered.tls_server_name == "localhost"
        assert registered.auth_mode == pb.ENDPOINT_AUTH_MODE_SERVER_TLS
        probe = registered.last_probe
        assert probe.passed
        assert probe.spki_pins == [server.pin]
        assert not probe.failure_reason
        assert [s.name for s in probe.steps] == ["resolve", "tcp", "tls", "pins", "grpc"]
        assert "grpc.service:grpc.health.v1.Health" in probe.capabilities
        assert probe.peer_not_after.seconds > probe.probed_at.seconds
        fetched = (await stub.GetEndpoint(pb.GetEndpointRequest(endpoint_id="pge/dr-gateway"))).endpoint
        assert fetched == registered
        by_program = await stub.ListEndpoints(pb.ListEndpointsRequest(program="dr-evening"))
        assert [e.endpoint_id for e in by_program.endpoints] == ["pge/dr-gateway"]
        assert not (await stub.ListEndpoints(pb.ListEndpointsRequest(program="dr"))).endpoints


async def test_a_failed_probe_is_stored_and_revalidation_follows_the_endpoint(
    fabric: Fabric, pki: PartnerPki, tmp_path: Path
) -> None:
    vendor = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    routes = {"/healthz": (503, b"")}
    with https_server(pki.server(), tmp_path, routes) as port:
        async with fabric.channel(vendor) as channel:
            stub = integration(channel)
            first = (
                await stub.RegisterEndpoint(
                    request(pki, "fleet-api", f"https://localhost:{port}", HTTPS, health_path="/healthz")
                )
            ).endpoint
            assert first.state == pb.ENDPOINT_STATE_FAILED
            assert first.last_probe.failure_reason == "HTTP_STATUS"
            assert "503" in first.last_probe.failure_detail
            routes["/healthz"] = (200, b"ok")
            healed = (await stub.ValidateEndpoint(pb.ValidateEndpointRequest(endpoint_id="solarco/fleet-api"))).endpoint
            assert healed.state == pb.ENDPOINT_STATE_VALIDATED
            assert healed.last_probe.passed
            assert healed.last_probe.probed_at.ToMicroseconds() > first.last_probe.probed_at.ToMicroseconds()
            assert healed.registered_at == first.registered_at
            validated = await stub.ListEndpoints(pb.ListEndpointsRequest(state=pb.ENDPOINT_STATE_VALIDATED))
            assert [e.endpoint_id for e in validated.endpoints] == ["solarco/fleet-api"]
    async with fabric.channel(vendor) as channel:
        gone = (
            await integration(channel).ValidateEndpoint(pb.ValidateEndpointRequest(endpoint_id="solarco/fleet-api"))
        ).endpoint
    assert gone.state == pb.ENDPOINT_STATE_FAILED
    assert gone.last_probe.failure_reason == "TCP_CONNECT_FAILED"
    assert gone.last_probe.spki_pins == [], "a failed TLS step records no pins"


async def test_a_vendor_registers_its_ocpp_csms(fabric: Fabric, pki: PartnerPki, tmp_path: Path) -> None:
    vendor = await fabric.onboard(ca.Role.DEVICE_VENDOR, "voltbox")
    async with csms(pki.server(), tmp_path, ["ocpp2.0.1", "ocpp1.6"]) as port, fabric.channel(vendor) as channel:
        endpoint = (
            await integration(channel).RegisterEndpoint(
                request(pki, "csms", f"wss://localhost:{port}/ocpp", pb.ENDPOINT_PROTOCOL_OCPP_201)
            )
        ).endpoint
    assert endpoint.state == pb.ENDPOINT_STATE_VALIDATED, endpoint.last_probe
    assert "ocpp.subprotocol:ocpp2.0.1" in endpoint.last_probe.capabilities


async def test_the_operator_registers_on_behalf_and_owners_remove(fabric: Fabric, pki: PartnerPki) -> None:
    utility = await fabric.onboard(ca.Role.UTILITY, "pge")
    async with grpc_endpoint(pki.server()) as port:
        async with fabric.operator() as channel:
            made = await integration(channel).RegisterEndpoint(
                request(pki, "vtn", f"https://localhost:{port}", namespace="pge")
            )
            assert made.endpoint.endpoint_id == "pge/vtn"
        async with fabric.channel(utility) as channel:
            stub = integration(channel)
            await stub.RemoveEndpoint(pb.RemoveEndpointRequest(endpoint_id="pge/vtn"))
            await expect_error(
                stub.GetEndpoint(pb.GetEndpointRequest(endpoint_id="pge/vtn")),
                grpc.StatusCode.NOT_FOUND,
                "ENDPOINT_NOT_FOUND",
            )
            await expect_error(
                stub.RemoveEndpoint(pb.RemoveEndpointRequest(endpoint_id="pge/vtn")),
                grpc.StatusCode.NOT_FOUND,
                "ENDPOINT_NOT_FOUND",
            )
    assert await all_endpoints(fabric) == []


BAD_REQUESTS: list[tuple[dict[str, Any], str, str]] = [
    ({"name": "Bad_Name"}, "INVALID_NAME", "name"),
    ({"url": "http://localhost:1"}, "INSECURE_OR_WRONG_SCHEME", "url"),
    ({"url": "wss://localhost:1"}, "INSECURE_OR_WRONG_SCHEME", "url"),
    ({"url": "https://user:pw@localhost:1"}, "INVALID_URL", "url"),
    ({"url": "https://localhost:1/some/path"}, "INVALID_URL", "url"),
    ({"url": "https://localhost:99999"}, "INVALID_URL", "url"),
    ({"url": "https://bad host:1"}, "INVALID_HOST", "url"),
    ({"url": ""}, "EMPTY_FIELD", "url"),
    ({"protocol": pb.ENDPOINT_PROTOCOL_UNSPECIFIED}, "INVALID_ENUM", "protocol"),
    ({"protocol": 42}, "INVALID_ENUM", "protocol"),
    ({"auth_mode": 42}, "INVALID_ENUM", "auth_mode"),
    ({"programs": ["NEM"]}, "INVALID_NAME", "programs[0]"),
    ({"programs": ["nem", "nem"]}, "DUPLICATE", "programs"),
    ({"health_path": "/healthz"}, "NOT_APPLICABLE", "health_path"),
    ({"expected_spki_pins": ["sha1/abc"]}, "INVALID_PIN", "expected_spki_pins[0]"),
    ({"expected_spki_pins": ["sha256/" + "A" * 10]}, "INVALID_PIN", "expected_spki_pins[0]"),
    ({"trust_anchors_pem": "not pem"}, "INVALID_PEM", "trust_anchors_pem"),
    ({"tls_server_name": "-bad-"}, "INVALID_HOST", "tls_server_name"),
]


async def test_bad_input_is_refused_before_any_probe_and_nothing_is_written(fabric: Fabric, pki: PartnerPki) -> None:
    utility = await fabric.onboard(ca.Role.UTILITY, "pge")
    leaf_only = pki.server().chain_pem.decode().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    cases: list[tuple[dict[str, Any], str, str]] = [
        *BAD_REQUESTS,
        ({"trust_anchors_pem": leaf_only}, "NOT_A_CA", "trust_anchors_pem"),
    ]
    async with fabric.channel(utility) as channel:
        for overrides, reason, field in cases:
            fields: dict[str, Any] = {
                "name": "ep",
                "url": "https://localhost:1",
                "protocol": GRPC,
                "trust_anchors_pem": pki.anchors_pem,
            } | overrides
            await expect_error(
                integration(channel).RegisterEndpoint(pb.RegisterEndpointRequest(**fields)),
                grpc.StatusCode.INVALID_ARGUMENT,
                reason,
                field,
            )
    assert await all_endpoints(fabric) == []


async def test_tenancy_roles_and_conflicts(fabric: Fabric, pki: PartnerPki) -> None:
    utility = await fabric.onboard(ca.Role.UTILITY, "pge")
    vendor = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    aggregator = await fabric.onboard(ca.Role.AGGREGATOR, "gridagg")
    async with grpc_endpoint(pki.server()) as port:
        url = f"https://localhost:{port}"
        async with fabric.channel(utility) as channel:
            await integration(channel).RegisterEndpoint(request(pki, "vtn", url))
            await expect_error(
                integration(channel).RegisterEndpoint(request(pki, "vtn", url)),
                grpc.StatusCode.ALREADY_EXISTS,
                "ENDPOINT_EXISTS",
                "name",
            )
        async with fabric.channel(vendor) as channel:
            stub = integration(channel)
            await expect_error(
                stub.RegisterEndpoint(request(pki, "x", url, namespace="pge")),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
            await expect_error(
                stub.ValidateEndpoint(pb.ValidateEndpointRequest(endpoint_id="pge/vtn")),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
            await expect_error(
                stub.GetEndpoint(pb.GetEndpointRequest(endpoint_id="pge/vtn")),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
            await expect_error(
                stub.RemoveEndpoint(pb.RemoveEndpointRequest(endpoint_id="pge/vtn")),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
            await expect_error(
                stub.ListEndpoints(pb.ListEndpointsRequest(namespace="pge")),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
            assert not (await stub.ListEndpoints(pb.ListEndpointsRequest())).endpoints
        async with fabric.channel(aggregator) as channel:
            await expect_error(
                integration(channel).RegisterEndpoint(request(pki, "agg", url)),
                grpc.StatusCode.PERMISSION_DENIED,
                "ROLE_NOT_ALLOWED",
            )
        async with fabric.operator() as channel:
            stub = integration(channel)
            await expect_error(
                stub.RegisterEndpoint(request(pki, "own", url)),
                grpc.StatusCode.FAILED_PRECONDITION,
                "NOT_AN_ENDPOINT_OWNER",
            )
            await expect_error(
                stub.RegisterEndpoint(request(pki, "x", url, namespace="gridagg")),
                grpc.StatusCode.FAILED_PRECONDITION,
                "NOT_AN_ENDPOINT_OWNER",
            )
            await expect_error(
                stub.RegisterEndpoint(request(pki, "x", url, namespace="nobody")),
                grpc.StatusCode.NOT_FOUND,
                "PARTNER_NOT_FOUND",
            )
            await expect_error(
                stub.ValidateEndpoint(pb.ValidateEndpointRequest(endpoint_id="pge/nope")),
                grpc.StatusCode.NOT_FOUND,
                "ENDPOINT_NOT_FOUND",
            )
            await stub.SuspendPartner(pb.SuspendPartnerRequest(namespace="pge", reason="audit"))
            await expect_error(
                stub.RegisterEndpoint(request(pki, "x", url, namespace="pge")),
                grpc.StatusCode.FAILED_PRECONDITION,
                "PARTNER_SUSPENDED",
            )
    assert await all_endpoints(fabric) == ["pge/vtn"]


async def test_listing_pages(fabric: Fabric, pki: PartnerPki) -> None:
    utility = await fabric.onboard(ca.Role.UTILITY, "pge")
    async with grpc_endpoint(pki.server()) as port, fabric.channel(utility) as channel:
        stub = integration(channel)
        for i in range(5):
            await stub.RegisterEndpoint(request(pki, f"ep-{i}", f"https://localhost:{port}"))
        seen: list[str] = []
        token = ""
        while True:
            page = await stub.ListEndpoints(pb.ListEndpointsRequest(page_size=2, page_token=token))
            seen += [e.endpoint_id for e in page.endpoints]
            token = page.next_page_token
            if not token:
                break
        assert seen == [f"pge/ep-{i}" for i in range(5)]
        await expect_error(
            stub.ListEndpoints(pb.ListEndpointsRequest(page_size=5000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "OUT_OF_RANGE",
            "page_size",
        )
