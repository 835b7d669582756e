"""What a probe is asked to check and what it found."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from openvpp.v1 import integration_pb2 as pb


@dataclass(frozen=True, slots=True)
class Target:
    """An endpoint as its owner declared it; validated before it gets here."""

    url: str
    protocol: int
    server_name: str
    health_path: str = ""
    trust_anchors_pem: str = ""
    expected_spki_pins: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 443


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    passed: bool
    detail: str
    duration_ms: int


@dataclass(slots=True)
class Outcome:
    """The stored result of one probe: every step run, and the first failure."""

    probed_at_us: int
    steps: list[Step] = field(default_factory=list)
    spki_pins: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    failure_reason: str = ""
    failure_detail: str = ""
    tls_version: str = ""
    peer_subject: str = ""
    peer_not_after_us: int = 0

    @property
    def passed(self) -> bool:
        return not self.failure_reason and bool(self.steps)

    @property
    def state(self) -> int:
        return pb.ENDPOINT_STATE_VALIDATED if self.passed else pb.ENDPOINT_STATE_FAILED

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Outcome:
        data = json.loads(text)
        data["steps"] = [Step(**s) for s in data["steps"]]
        return cls(**data)


class ProbeFailure(Exception):
    """A step failed; `reason` is the stable machine-readable code stored with the endpoint."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
