"""Use-case tokens, their stablecoin reserves, and the development faucet."""
