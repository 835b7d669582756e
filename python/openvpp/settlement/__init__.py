"""Settlement: stablecoin, use-case tokens and their reserves, redemption."""
