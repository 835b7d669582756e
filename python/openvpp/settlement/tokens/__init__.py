"""Use-case tokens, their stablecoin reserves and redemptions, and the development faucet."""
