"""The main job, small: `openvpp demo` end to end, as a user runs it (its own
process, which starts a real server process of its own)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from openvpp.demo.scenario import last_weekday


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


@pytest.mark.timeout(300)
def test_a_small_demo_pays_and_its_ledger_and_reserves_check_out(tmp_path: Path) -> None:
    try:
        run = subprocess.run(
            [sys.executable, "-m", "openvpp", "demo", "--devices", "24", "--seed", "11", "--out", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired as stuck:
        # What the demo and its server last said, rather than only "timeout".
        log = tmp_path / "server.log"
        server = log.read_text()[-4000:] if log.exists() else ""
        pytest.fail(f"demo still running after 240 s\n{_text(stuck.stdout)[-4000:]}\n--- server.log\n{server}")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    result = json.loads((tmp_path / "summary.json").read_text())
    assert all(result["checks"].values()), result["checks"]
    assert result["ledger_ok"]
    assert result["reserves_covered"] == {"SOLAR": True, "DR": True}
    # Every good reading accepted; each bad one refused with its own reason.
    assert {k: v for k, v in result["verdicts"].items() if k != "ACCEPTED"} == {
        "DUPLICATE": 2,
        "BAD_SIGNATURE": 2,
        "COUNTER_DECREASED": 2,
    }
    assert result["payouts"] > 0
    assert result["dr_performance_wh"] > 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 4
    # Opens offline: no scripts, stylesheets or images fetched from anywhere.
    assert not any(tag in page for tag in ("<script", "<link", "<img", "src="))
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert "ledger check" in run.stdout


def test_the_demo_day_is_the_latest_complete_weekday() -> None:
    assert last_weekday(dt.date(2026, 11, 23)) == dt.date(2026, 11, 20)  # Monday -> Friday
    assert last_weekday(dt.date(2026, 11, 22)) == dt.date(2026, 11, 20)  # Sunday -> Friday
    assert last_weekday(dt.date(2026, 11, 19)) == dt.date(2026, 11, 18)
