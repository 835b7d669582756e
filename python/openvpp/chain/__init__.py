"""Solana: the embedded chain and JSON-RPC backends behind one interface,
the key files, and the exactly-once transaction outbox."""
