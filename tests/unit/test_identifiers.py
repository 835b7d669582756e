from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openvpp.errors import InvalidArgument
from openvpp.registry import identifiers
from openvpp.v1 import common_pb2


def test_sfdi_matches_the_ieee_2030_5_worked_example() -> None:
    # IEEE 2030.5 §6.3.3: LFDI 3E4F45AB31EDFE5B67E343E5E4562E31984E23E5 -> SFDI 167261211391.
    lfdi = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
    sfdi = int(lfdi[:9], 16)
    assert f"{sfdi}{identifiers.sfdi_check_digit(sfdi)}" == "167261211391"
    assert identifiers.canonical_alias(common_pb2.ALIAS_KIND_SFDI, "167261211391", "f") == "167261211391"


@given(st.integers(min_value=1, max_value=identifiers.SFDI_MAX))
def test_every_36_bit_value_with_its_check_digit_is_accepted(value: int) -> None:
    text = f"{value}{identifiers.sfdi_check_digit(value)}"
    assert identifiers.canonical_alias(common_pb2.ALIAS_KIND_SFDI, text, "f") == text
    assert sum(int(d) for d in text) % 10 == 0


@given(st.integers(min_value=1, max_value=identifiers.SFDI_MAX), st.integers(min_value=1, max_value=9))
def test_a_wrong_check_digit_is_refused(value: int, delta: int) -> None:
    wrong = (identifiers.sfdi_check_digit(value) + delta) % 10
    with pytest.raises(InvalidArgument) as caught:
        identifiers.canonical_alias(common_pb2.ALIAS_KIND_SFDI, f"{value}{wrong}", "f")
    assert caught.value.reason == "SFDI_CHECK_DIGIT"


def test_lfdi_is_forty_hex_digits_stored_upper_case() -> None:
    lfdi = hashlib.sha256(b"cert").digest()[:20].hex()
    assert identifiers.canonical_alias(common_pb2.ALIAS_KIND_LFDI, lfdi, "f") == lfdi.upper()
    for bad in (lfdi[:-1], lfdi + "0", "g" * 40, ""):
        with pytest.raises(InvalidArgument):
            identifiers.canonical_alias(common_pb2.ALIAS_KIND_LFDI, bad, "f")


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (common_pb2.ALIAS_KIND_OCPP_CHARGE_POINT_ID, "CP-000123", "has space"),
        (common_pb2.ALIAS_KIND_OPENADR_VEN_NAME, "ven 12 north", " padded"),
        (common_pb2.ALIAS_KIND_METER_NUMBER, "PGE-M0001/2", "x" * 65),
    ],
)
def test_text_aliases(kind: int, good: str, bad: str) -> None:
    assert identifiers.canonical_alias(kind, good, "f") == good
    with pytest.raises(InvalidArgument):
        identifiers.canonical_alias(kind, bad, "f")


def test_unknown_alias_kind_names_the_kind_field() -> None:
    with pytest.raises(InvalidArgument) as caught:
        identifiers.canonical_alias(99, "x", "record.aliases[0].value")
    assert caught.value.violations[0].field == "record.aliases[0].kind"


@given(st.binary(min_size=32, max_size=32))
def test_der_id_round_trip(key: bytes) -> None:
    assert identifiers.decode_der_id(identifiers.encode_der_id(key), "f") == key


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "EMPTY_FIELD"), ("0OIl", "MALFORMED_BASE58"), ("abc", "WRONG_KEY_LENGTH"), ("é", "MALFORMED_BASE58")],
)
def test_bad_der_ids(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        identifiers.decode_der_id(text, "der_id")
    assert caught.value.reason == reason
    assert caught.value.violations[0].field == "der_id"


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("inverter-7f3a.solarco", True),
        ("a.solarco", True),
        ("inverter.sub.solarco", False),
        ("Inverter.solarco", False),
        ("-x.solarco", False),
        ("solarco", False),
        ("x.othervendor", False),
    ],
)
def test_names_are_one_label_under_the_namespace(name: str, ok: bool) -> None:
    if ok:
        assert identifiers.check_device_name(name, "solarco", "name") == name
    else:
        with pytest.raises(InvalidArgument):
            identifiers.check_device_name(name, "solarco", "name")


def test_alias_candidates_for_free_text() -> None:
    kinds = {k for k, _ in identifiers.alias_candidates("167261211391")}
    assert common_pb2.ALIAS_KIND_SFDI in kinds
    assert common_pb2.ALIAS_KIND_LFDI not in kinds
