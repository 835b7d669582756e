"""Tariffs read from OpenEI URDB JSON: exactly, or refused with the part named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from openvpp import errors
from openvpp.billing import urdb
from openvpp.billing.tariff import DemandTier, EnergyTier

EXAMPLE = Path(__file__).resolve().parents[1] / "vectors" / "urdb" / "residential_tou_demand.json"


def example() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return document


def test_the_example_reads_exactly() -> None:
    tariff = urdb.tariff(example())
    assert tariff.name.startswith("Residential Time-of-Use")
    # rate + adj, in micro-units per kWh; tier limits in Wh.
    assert tariff.energy[0] == (EnergyTier(350_000, 452_100, 0), EnergyTier(None, 512_300, 0))
    assert tariff.energy[1][0] == EnergyTier(350_000, 231_770, 41_250)
    assert tariff.energy_period(7, 17, weekend=False) == 0
    assert tariff.energy_period(7, 17, weekend=True) == 1
    assert tariff.energy_period(1, 18, weekend=False) == 2
    assert tariff.demand_tou[0] == (DemandTier(3_000, 9_250_000), DemandTier(None, 12_000_000))
    assert tariff.demand_flat[7] == (DemandTier(None, 2_150_000),)
    assert tariff.demand_flat[1] == (DemandTier(None, 1_750_000),)
    assert tariff.fixed_monthly == 12_500_000


def test_an_api_answer_with_several_rates_needs_a_label() -> None:
    document = example()
    other = copy.deepcopy(document["items"][0])
    other["label"] = "another"
    document["items"].append(other)
    with pytest.raises(errors.InvalidArgument) as refused:
        urdb.tariff(document)
    assert refused.value.reason == "URDB_AMBIGUOUS"
    assert urdb.tariff(document, label="another").name == other["name"]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"demandratchetpercentage": [0.8] * 12}, "demandratchetpercentage", "URDB_UNSUPPORTED"),
        ({"coincidentratestructure": [[{"rate": 3}]]}, "coincidentratestructure", "URDB_UNSUPPORTED"),
        ({"demandwindow": 30}, "demandwindow", "URDB_UNSUPPORTED"),
        ({"demandunits": "kVA"}, "demandunits", "URDB_UNSUPPORTED"),
        ({"fixedchargeunits": "$/year"}, "fixedchargeunits", "URDB_UNSUPPORTED"),
        ({"energyweekdayschedule": [[0] * 24] * 11}, "energyweekdayschedule", "BAD_SCHEDULE"),
        ({"energyweekendschedule": [[7] * 24] * 12}, "energyweekendschedule", "UNKNOWN_PERIOD"),
        ({"energyratestructure": []}, "energyratestructure", "URDB_NO_ENERGY"),
    ],
)
def test_unsupported_or_broken_parts_are_refused_by_name(change: dict[str, Any], field: str, reason: str) -> None:
    document = example()
    document["items"][0].update(change)
    with pytest.raises(errors.InvalidArgument) as refused:
        urdb.tariff(document)
    assert refused.value.reason == reason
    assert refused.value.violations[0].field.startswith(field)


def test_daily_kwh_tiers_and_sub_micro_rates_are_refused() -> None:
    document = example()
    document["items"][0]["energyratestructure"][0][0]["unit"] = "kWh daily"
    with pytest.raises(errors.InvalidArgument) as refused:
        urdb.tariff(document)
    assert refused.value.violations[0].field == "energyratestructure[0][0].unit"
    document = example()
    document["items"][0]["energyratestructure"][1][0]["rate"] = 0.12345678
    with pytest.raises(errors.InvalidArgument) as precise:
        urdb.tariff(document)
    assert precise.value.reason == "URDB_PRECISION"


def test_tiers_that_differ_between_periods_are_refused() -> None:
    document = example()
    document["items"][0]["energyratestructure"][2][0]["max"] = 500
    with pytest.raises(errors.InvalidArgument) as refused:
        urdb.tariff(document)
    assert refused.value.reason == "TIERS_DIFFER"
    assert refused.value.violations[0].field == "energyratestructure"


def test_a_daily_fixed_charge_is_kept_per_day() -> None:
    document = example()
    document["items"][0].update({"fixedchargefirstmeter": 0.35, "fixedchargeunits": "$/day"})
    tariff = urdb.tariff(document)
    assert (tariff.fixed_monthly, tariff.fixed_daily) == (0, 350_000)
