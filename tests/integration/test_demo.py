"""The main job, small: `openvpp demo` end to end against a real server process."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from rich.console import Console

from openvpp.demo import run
from openvpp.demo.scenario import last_weekday


async def test_a_small_demo_pays_and_its_ledger_and_reserves_check_out(tmp_path: Path) -> None:
    output = io.StringIO()
    result = await run(devices=24, seed=11, out=tmp_path, console=Console(file=output, width=120))
    assert result.exit_code == 0, (result.checks, output.getvalue()[-3000:])
    assert result.ledger_ok
    assert result.reserves_covered == {"SOLAR": True, "DR": True}
    # Every good reading accepted; each bad one refused with its own reason.
    assert {k: v for k, v in result.verdicts.items() if k != "ACCEPTED"} == {
        "DUPLICATE": 2, "BAD_SIGNATURE": 2, "COUNTER_DECREASED": 2,
    }  # fmt: skip
    assert result.payouts > 0
    assert result.dr_performance_wh > 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 4
    # Opens offline: no scripts, stylesheets or images fetched from anywhere.
    assert not any(tag in page for tag in ("<script", "<link", "<img", "src="))
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert "ledger check" in output.getvalue()


def test_the_demo_day_is_the_latest_complete_weekday() -> None:
    assert last_weekday(dt.date(2026, 11, 23)) == dt.date(2026, 11, 20)  # Monday -> Friday
    assert last_weekday(dt.date(2026, 11, 22)) == dt.date(2026, 11, 20)  # Sunday -> Friday
    assert last_weekday(dt.date(2026, 11, 19)) == dt.date(2026, 11, 18)
