"""Readings in: verification against the device states, hash-chained storage."""
