"""The demo's report: one self-contained HTML file (charts inlined as SVG,
no scripts, nothing fetched) and the same four charts as one PNG."""

from __future__ import annotations

import datetime as dt
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

GREEN, RED, BLUE, ORANGE, GREY = "#2e9e5b", "#d0543f", "#2f6db5", "#e69b22", "#8a8f98"


@dataclass
class ReportData:
    title: str
    interval_ends: Sequence[dt.datetime]  # local, each 15-minute interval of the demo days
    net_export_kwh: Sequence[float]  # fleet export minus import per interval
    export_rate: Sequence[float]  # $/kWh per interval
    payouts: dict[str, list[tuple[float, float]]]  # symbol -> (seconds, amount in tokens)
    event_ends: Sequence[dt.datetime]
    baseline_kwh: Sequence[float]
    actual_kwh: Sequence[float]
    verdicts: dict[str, int]
    summary: list[tuple[str, str]]
    transactions: list[tuple[str, str, str, str]]  # kind, detail, amount, signature
    notes: list[str] = field(default_factory=list)


def _hours(times: Sequence[dt.datetime], origin: dt.datetime) -> np.ndarray:
    # Plain hours since local midnight, labelled by hand: the charts need no date units.
    return np.array([(t - origin).total_seconds() / 3600 for t in times])


def _clock(ax: Axes, hours: np.ndarray, step: float) -> None:
    # Ticks placed explicitly, as whole multiples of the step.
    first, last = np.floor(hours.min() / step), np.ceil(hours.max() / step)
    ticks = np.arange(first, last + 1) * step
    ax.set_xticks(ticks, [f"{int(h // 1) % 24:02d}:{round(h % 1 * 60):02d}" for h in ticks])


def _midnight(t: dt.datetime) -> dt.datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def net_export(ax: Axes, r: ReportData) -> None:
    if not r.interval_ends:
        return
    origin = _midnight(r.interval_ends[0] - dt.timedelta(minutes=15))
    x = _hours(r.interval_ends, origin)
    y = np.array(r.net_export_kwh)
    ax.fill_between(x, y, 0, where=y >= 0, step="pre", color=GREEN, alpha=0.75, label="net export")
    ax.fill_between(x, y, 0, where=y < 0, step="pre", color=RED, alpha=0.6, label="net import")
    ax.axhline(0, color=GREY, lw=0.8)
    if len(r.event_ends):
        event = _hours([r.event_ends[0] - dt.timedelta(minutes=15), r.event_ends[-1]], origin)
        ax.axvspan(event[0], event[1], color=ORANGE, alpha=0.12, label="DR event")
    ax.set_ylabel("fleet net export per 15 min (kWh)")
    _clock(ax, x, 3 if len(x) <= 100 else 12)
    rate = ax.twinx()
    rate.step(x, r.export_rate, where="pre", color=BLUE, lw=1.8, label="export rate")
    rate.set_ylabel("export rate ($/kWh)", color=BLUE)
    rate.set_ylim(0, max(r.export_rate, default=1) * 1.6)
    rate.tick_params(axis="y", colors=BLUE)
    handles = ax.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False)
    ax.set_title("Fleet net export against the time-of-use export rate")


def payouts(ax: Axes, r: ReportData) -> None:
    colours = [GREEN, ORANGE, BLUE, RED]
    for (symbol, points), colour in zip(sorted(r.payouts.items()), colours, strict=False):
        if not points:
            continue
        points = sorted(points)
        t = [0.0] + [p[0] for p in points]
        total = np.cumsum([0.0] + [p[1] for p in points])
        ax.step(t, total, where="post", color=colour, lw=2, label=f"{symbol} ({total[-1]:,.2f})")
    ax.set_xlabel("seconds since the demo started")
    ax.set_ylabel("paid on chain (tokens)")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_title("Cumulative payouts confirmed on chain, per token")


def dr_event(ax: Axes, r: ReportData) -> None:
    if len(r.event_ends):
        x = _hours(r.event_ends, _midnight(r.event_ends[0]))
        base, actual = np.array(r.baseline_kwh), np.array(r.actual_kwh)
        ax.step(x, base, where="pre", color=GREY, lw=2, ls="--", label="baseline (10-of-10, adjusted)")
        ax.step(x, actual, where="pre", color=BLUE, lw=2, label="actual")
        ax.fill_between(x, actual, base, where=base > actual, step="pre", color=GREEN, alpha=0.3, label="performance")
        _clock(ax, x, 0.5)
        ax.legend(loc="best", fontsize=8, frameon=False)
    ax.set_ylabel("DR fleet net load per 15 min (kWh)")
    ax.set_title("The DR event: baseline against actual load")


def verdicts(ax: Axes, r: ReportData) -> None:
    items = sorted(r.verdicts.items(), key=lambda kv: -kv[1])
    names = [k.replace("_", " ").lower() for k, _ in items]
    counts = [v for _, v in items]
    colours = [GREEN if k in ("ACCEPTED", "SEQ_GAP") else RED for k, _ in items]
    bars = ax.barh(names, counts, color=colours)
    ax.set_xscale("log")
    ax.invert_yaxis()
    for bar, count in zip(bars, counts, strict=True):
        ax.text(bar.get_width() * 1.15, bar.get_y() + bar.get_height() / 2, f"{count:,}", va="center", fontsize=9)
    ax.set_xlim(0.8, max(counts, default=1) * 8)
    ax.set_xlabel("readings (log scale)")
    ax.set_title("Reading verdicts")


CHARTS: list[Callable[[Axes, ReportData], None]] = [net_export, payouts, dr_event, verdicts]


def _style(ax: Axes) -> None:
    ax.grid(axis="y", color="#e5e7eb", lw=0.8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _svg(chart: Callable[[Axes, ReportData], None], r: ReportData) -> str:
    fig, ax = plt.subplots(figsize=(7.2, 3.8), dpi=100)
    _style(ax)
    # Tick placement on a nearly empty axis (a tiny fleet, a quiet token) may
    # divide by zero inside matplotlib; the chart is still right.
    with np.errstate(invalid="ignore", divide="ignore"):
        chart(ax, r)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def write_png(r: ReportData, path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(14, 7.6), dpi=110)
    with np.errstate(invalid="ignore", divide="ignore"):
        for ax, chart in zip(axes.flat, CHARTS, strict=True):
            _style(ax)
            chart(ax, r)
        fig.suptitle(r.title, fontsize=13, weight="bold")
        fig.tight_layout()
        fig.savefig(path)
    plt.close(fig)


def write_html(r: ReportData, path: Path) -> None:
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in r.summary)
    txs = "".join(
        f"<tr><td>{e(kind)}</td><td>{e(detail)}</td><td class=n>{e(amount)}</td><td><code>{e(sig)}</code></td></tr>"
        for kind, detail, amount, sig in r.transactions
    )
    charts = "".join(f"<figure>{_svg(c, r)}</figure>" for c in CHARTS)
    notes = "".join(f"<li>{e(n)}</li>" for n in r.notes)
    path.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(r.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2933;margin:0;background:#f6f7f9}}
main{{max-width:1520px;margin:0 auto;padding:24px}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:17px;margin:28px 0 10px}}
.grid{{display:grid;grid-template-columns:repeat(auto-fit,minmax(700px,1fr));gap:16px}}
figure{{margin:0;background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:8px}}
figure svg{{width:100%;height:auto}}
table{{border-collapse:collapse;background:#fff;border:1px solid #e3e6ea;width:100%}}
th,td{{text-align:left;padding:6px 10px;border-bottom:1px solid #eef0f3;vertical-align:top}}
th{{width:28%;font-weight:600}} td.n{{text-align:right;white-space:nowrap}}
code{{font-size:12px;word-break:break-all}} .muted{{color:#6b7280}}
</style></head><body><main>
<h1>{e(r.title)}</h1>
<p class=muted>Everything below came through OpenVPP's public gRPC API over mutual TLS, and was paid on the
embedded Solana chain running the real SPL Token-2022 program.</p>
<div class=grid>{charts}</div>
<h2>Summary</h2><table>{rows}</table>
<h2>Sample on-chain transactions</h2>
<table><tr><th>kind</th><th>detail</th><th>amount</th><th>signature</th></tr>{txs}</table>
<ul class=muted>{notes}</ul>
</main></body></html>
""",
        encoding="utf-8",
    )
