"""LFDI and SFDI derivation checked against the worked example of IEEE 2030.5 §6.3,
the same values public 2030.5 implementations (GridAPPS-D's Go server, the
CSIP-AUS test harness) assert in their own tests."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from openvpp.registry import identifiers
from openvpp.v1 import common_pb2

FINGERPRINT = bytes.fromhex("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5349E2AD745672ED145EE213A")


def test_the_standards_worked_example() -> None:
    lfdi = identifiers.lfdi_from_fingerprint(FINGERPRINT)
    assert lfdi == "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
    assert int(lfdi[:9], 16) == 16726121139
    assert identifiers.sfdi_from_lfdi(lfdi) == "167261211391"


def test_a_certificate_lfdi_is_its_sha256_fingerprint_truncated() -> None:
    der = b"\x30\x82" + bytes(range(200))
    assert identifiers.lfdi_from_certificate(der) == hashlib.sha256(der).hexdigest()[:40].upper()


@given(st.binary(min_size=32, max_size=32))
def test_every_derived_pair_is_accepted_as_aliases(fingerprint: bytes) -> None:
    lfdi = identifiers.lfdi_from_fingerprint(fingerprint)
    sfdi = identifiers.sfdi_from_lfdi(lfdi)
    assert identifiers.canonical_alias(common_pb2.ALIAS_KIND_LFDI, lfdi, "f") == lfdi
    if not sfdi.startswith("0"):
        assert identifiers.canonical_alias(common_pb2.ALIAS_KIND_SFDI, sfdi, "f") == sfdi
    assert sum(int(d) for d in sfdi) % 10 == 0
