"""Billing: tariffs, net-metering regimes and bills (the debit side)."""
