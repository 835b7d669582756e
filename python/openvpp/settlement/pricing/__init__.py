"""Pricing: tariffs and price feeds, NEM and DR performance priced into exact credits (money rules in settlement.money)."""
