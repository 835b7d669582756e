"""Microseconds since the epoch (how the store keeps instants) and protobuf Timestamps."""

from __future__ import annotations

from google.protobuf import timestamp_pb2


def from_micros(micros: int) -> timestamp_pb2.Timestamp:
    seconds, rest = divmod(micros, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=rest * 1000)


def to_micros(t: timestamp_pb2.Timestamp) -> int:
    return int(t.seconds) * 1_000_000 + int(t.nanos) // 1000
