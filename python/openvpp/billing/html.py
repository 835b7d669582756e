"""A bill as a page its customer would recognise: the period, a usage
chart, the charges and credits, the amount due and the payment. One
self-contained HTML file: no script, nothing fetched."""

from __future__ import annotations

import html
from fractions import Fraction
from typing import Any

from openvpp.v1 import billing_pb2 as pb

KIND_NAMES = {
    pb.BILL_LINE_KIND_ENERGY: "Energy",
    pb.BILL_LINE_KIND_EXPORT_CREDIT: "Export credit",
    pb.BILL_LINE_KIND_DEMAND_TOU: "Demand (time of use)",
    pb.BILL_LINE_KIND_DEMAND_FLAT: "Demand (monthly)",
    pb.BILL_LINE_KIND_FIXED_MONTHLY: "Fixed charge",
    pb.BILL_LINE_KIND_FIXED_DAILY: "Daily charge",
    pb.BILL_LINE_KIND_MINIMUM: "Minimum bill",
    pb.BILL_LINE_KIND_TAX: "Taxes",
    pb.BILL_LINE_KIND_TRUE_UP: "Annual true-up credit",
    pb.BILL_LINE_KIND_CREDIT_CARRIED: "Credit carried forward",
}
UNITS = {
    pb.BILL_LINE_KIND_ENERGY: "Wh",
    pb.BILL_LINE_KIND_EXPORT_CREDIT: "Wh",
    pb.BILL_LINE_KIND_DEMAND_TOU: "W",
    pb.BILL_LINE_KIND_DEMAND_FLAT: "W",
    pb.BILL_LINE_KIND_FIXED_DAILY: "days",
    pb.BILL_LINE_KIND_TRUE_UP: "Wh",
}


METHOD_NAMES = {pb.PAYMENT_METHOD_AUTOPAY: "autopay", pb.PAYMENT_METHOD_PAYMENT_REQUEST: "payment request"}


def exact(value: Any) -> Fraction:
    return Fraction(int(value.numerator or 0), int(value.denominator or 1))


def ratio(value: Any) -> str:
    return value.numerator if value.denominator in ("", "1") else f"{value.numerator}/{value.denominator}"


def money(micro: Fraction) -> str:
    """Micro-units as dollars and cents for people (the exact amount is in the lines)."""
    cents = round(micro / 10_000)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def line_rows(bill: pb.Bill) -> list[dict[str, str]]:
    rows = []
    for line in bill.lines:
        rows.append(
            {
                "kind": pb.BillLineKind.Name(line.kind).removeprefix("BILL_LINE_KIND_").lower(),
                "period": str(line.period) if line.HasField("period") else "",
                "tier": str(line.tier) if line.HasField("tier") else "",
                "quantity": ratio(line.quantity),
                "rate": str(line.rate),
                "amount_micro": ratio(line.amount_micro),
                "readings": " ".join(f"{r.der_id}:{r.first_seq}-{r.last_seq}" for r in line.readings),
            }
        )
    return rows


def _usage_chart(bill: pb.Bill) -> str:
    """Energy lines as horizontal bars, inline SVG (no script, nothing fetched)."""
    energy = [line for line in bill.lines if line.kind in (pb.BILL_LINE_KIND_ENERGY, pb.BILL_LINE_KIND_EXPORT_CREDIT)]
    if not energy:
        return ""
    top = max(float(exact(line.quantity)) for line in energy) or 1.0
    rows = []
    for i, line in enumerate(energy):
        width = 300 * float(exact(line.quantity)) / top
        label = f"{KIND_NAMES[line.kind]}, period {line.period}" + (
            f" tier {line.tier}" if line.HasField("tier") else ""
        )
        colour = "#2f6f4f" if line.kind == pb.BILL_LINE_KIND_EXPORT_CREDIT else "#1f4e8c"
        y = 24 * i
        rows.append(
            f'<text x="0" y="{y + 15}">{html.escape(label)}</text>'
            f'<rect x="230" y="{y + 3}" width="{width:.1f}" height="16" fill="{colour}"/>'
            f'<text x="{235 + width:.1f}" y="{y + 15}">{float(exact(line.quantity)) / 1000:,.2f} kWh</text>'
        )
    height = 24 * len(energy)
    return (
        f'<svg role="img" aria-label="Energy by period" width="640" height="{height}" '
        f'viewBox="0 0 640 {height}" font-size="13">{"".join(rows)}</svg>'
    )


def render_html(bill: pb.Bill) -> str:
    """The bill as a self-contained page: period, usage chart, lines, credits, amount due, payment."""
    state = pb.BillState.Name(bill.state).removeprefix("BILL_STATE_").replace("_", " ").title()
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>".format(
            html.escape(KIND_NAMES.get(line.kind, "")),
            ""
            if not line.HasField("period")
            else f"period {line.period}" + ("" if not line.HasField("tier") else f", tier {line.tier}"),
            f"{float(exact(line.quantity)):,.1f} {UNITS.get(line.kind, '')}",
            money(exact(line.amount_micro)),
        )
        for line in bill.lines
    )
    paid = "".join(
        "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td><code>{}</code></td></tr>".format(
            html.escape(METHOD_NAMES.get(made.method, "")),
            html.escape(made.paid_at.ToDatetime().strftime("%Y-%m-%d %H:%M UTC")),
            f"{made.amount_base_units:,} base units",
            html.escape(made.signature),
        )
        for made in bill.payments
    )
    payment = (
        "<h2>Payments</h2><table><thead><tr><th scope=col>How</th><th scope=col>When</th>"
        f"<th scope=col class=n>Amount</th><th scope=col>Transaction</th></tr></thead><tbody>{paid}</tbody></table>"
        if paid
        else ""
    )
    if bill.state == pb.BILL_STATE_PAID:
        payment += f"<p>Paid in stablecoin, transaction <code>{html.escape(bill.payment_signature)}</code>.</p>"
    elif bill.past_due_reason:
        payment += f"<p class=due>Past due: {html.escape(bill.past_due_reason)}</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bill {html.escape(bill.account_ref)} {html.escape(bill.period_start)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;padding:0 1em;color:#111}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;padding:.4em;text-align:left}}
.n{{text-align:right}}.total{{font-size:1.4em}}.due{{color:#8b0000}}svg{{max-width:100%}}</style></head>
<body><h1>Electricity bill</h1>
<p>Program {html.escape(bill.program_id)} · account <strong>{html.escape(bill.account_ref)}</strong><br>
Billing period {html.escape(bill.period_start)} to {html.escape(bill.period_end)} · {html.escape(state)}</p>
<p>Imported {bill.imported_wh / 1000:,.2f} kWh · exported {bill.exported_wh / 1000:,.2f} kWh</p>
<h2>Your usage</h2>{_usage_chart(bill)}
<h2>Charges and credits</h2>
<table><thead><tr><th scope=col>Item</th><th scope=col>Period</th><th scope=col class=n>Quantity</th>
<th scope=col class=n>Amount</th></tr></thead><tbody>{rows}</tbody></table>
<p class=total>Total {money(exact(bill.total_micro))} · amount due
<strong>{bill.amount_due_base_units:,}</strong> stablecoin base units</p>
{payment}</body></html>
"""


__all__ = ["KIND_NAMES", "UNITS", "exact", "line_rows", "money", "render_html"]
