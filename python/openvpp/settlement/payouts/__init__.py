"""Paying credits: netting, packing and sending payouts, and recording their outcomes."""
