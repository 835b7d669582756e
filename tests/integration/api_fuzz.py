"""Descriptor-driven hostile requests for every RPC: random bytes and
structure-aware mutations of plausible requests, sent as raw bytes so
nothing on the client side can tidy them up."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from openvpp.v1 import billing_pb2, integration_pb2, registry_pb2, routing_pb2, settlement_pb2

SERVICES = [
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (registry_pb2, "RegistryService"),
        (integration_pb2, "IntegrationService"),
        (routing_pb2, "RoutingService"),
        (settlement_pb2, "SettlementService"),
        (billing_pb2, "BillingService"),
    )
]
MIB = 1024 * 1024
F = FieldDescriptor


def methods() -> list[MethodDescriptor]:
    return [m for service in SERVICES for m in service.methods]


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def message_class(descriptor: Any) -> type[Message]:
    return GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(descriptor.full_name))


@dataclass
class Case:
    method: MethodDescriptor
    kind: str
    raw: bytes


class Mutator:
    """Plausible values by field name (from a small world), then one or two
    fields bent out of shape."""

    def __init__(self, rng: random.Random, pool: dict[str, list[Any]]) -> None:
        self.rng = rng
        self.pool = pool

    def plausible(self, descriptor: Any, depth: int = 0) -> Message:
        message = message_class(descriptor)()
        for field in descriptor.fields:
            if self.rng.random() < 0.3:
                continue
            self._fill(message, field, depth)
        return message

    def _fill(self, message: Message, field: Any, depth: int) -> None:
        if field.type == F.TYPE_MESSAGE:
            if depth >= 3 or field.message_type.GetOptions().map_entry:
                return
            if field.is_repeated:
                getattr(message, field.name).add().CopyFrom(self.plausible(field.message_type, depth + 1))
            else:
                getattr(message, field.name).CopyFrom(self.plausible(field.message_type, depth + 1))
            return
        value = self._value(field)
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)

    def _value(self, field: Any) -> Any:
        if field.name in self.pool and field.type in (F.TYPE_STRING, F.TYPE_BYTES):
            return self.rng.choice(self.pool[field.name])
        if field.type == F.TYPE_STRING:
            return self.rng.choice(["", "pge", "pge/nem", "solarco", "x" * 12])
        if field.type == F.TYPE_BYTES:
            return self.rng.randbytes(self.rng.choice([0, 32, 64]))
        if field.type == F.TYPE_BOOL:
            return self.rng.random() < 0.5
        if field.type == F.TYPE_ENUM:
            return self.rng.choice([v.number for v in field.enum_type.values])
        if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
            return self.rng.random()
        return self.rng.choice([0, 1, 10, 1000])

    def bend(self, message: Message, depth: int = 0) -> None:
        """Sets one field (possibly nested) to something hostile."""
        fields: list[Any] = list(message.DESCRIPTOR.fields)
        if not fields:
            return
        field = self.rng.choice(fields)
        if field.type == F.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry and depth < 3:
            target = getattr(message, field.name)
            self.bend(target.add() if field.is_repeated else target, depth + 1)
            return
        if field.type == F.TYPE_MESSAGE:
            return
        values = list(self._hostile(field))
        value = self.rng.choice(values)
        try:
            if field.is_repeated:
                target = getattr(message, field.name)
                if isinstance(value, list):
                    target.extend(value)
                else:
                    target.append(value)
            elif not isinstance(value, list):
                setattr(message, field.name, value)
        except (ValueError, TypeError):
            pass

    def _hostile(self, field: Any) -> Iterator[Any]:
        rng = self.rng
        if field.type == F.TYPE_STRING:
            yield from ("", "0OIl0OIl", "1" * 44, "1" * 45, "x" * 321, "é\u0000\ud7ff" * 10, "../../etc/passwd")
            yield "A" * rng.choice([64 * 1024, MIB])
            yield "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 80)))
            if field.name in self.pool:
                good = str(rng.choice(self.pool[field.name]))
                yield good[:-1] + ("1" if good[-1:] != "1" else "2")
            if field.is_repeated:
                yield ["p"] * 5000
        elif field.type == F.TYPE_BYTES:
            yield from (b"", rng.randbytes(31), rng.randbytes(33), rng.randbytes(rng.randrange(1, 300)))
            yield rng.randbytes(rng.choice([64 * 1024, MIB]))
        elif field.type == F.TYPE_BOOL:
            yield True
        elif field.type == F.TYPE_ENUM:
            yield from (999, -1, 2**31 - 1)
        elif field.type in (F.TYPE_UINT64, F.TYPE_FIXED64):
            yield from (2**64 - 1, 2**63, 2**63 - 1, 0)
        elif field.type in (F.TYPE_INT64, F.TYPE_SFIXED64, F.TYPE_SINT64):
            yield from (-(2**63), 2**63 - 1, -1)
        elif field.type in (F.TYPE_UINT32, F.TYPE_FIXED32):
            yield from (2**32 - 1, 0)
        elif field.type in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
            yield from (-(2**31), 2**31 - 1, -1)
        else:
            yield from (float("nan"), float("inf"), -1.0)


def raw_garbage(rng: random.Random, valid: bytes) -> bytes:
    """Bytes that are not a message of the type: random, truncated, flipped or oversized."""
    choice = rng.randrange(5)
    if choice == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if choice == 1 and len(valid) > 1:
        return valid[: rng.randrange(1, len(valid))] + b"\xff"
    if choice == 2:
        return b"\x0a\xff\xff\xff\xff\x0f" + rng.randbytes(8)
    if choice == 3 and valid:
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data) + b"\x07"
    return b"\x08" + b"\xff" * 10 + b"\x01"


def cases(rng: random.Random, pool: dict[str, list[Any]], count: int) -> Iterator[Case]:
    """`count` hostile requests spread evenly over every RPC."""
    mutator = Mutator(rng, pool)
    every = methods()
    for n in range(count):
        method = every[n % len(every)]
        plausible = mutator.plausible(method.input_type)
        if n // len(every) % 3 == 0:
            yield Case(method, "bytes", raw_garbage(rng, plausible.SerializeToString()))
            continue
        for _ in range(rng.randrange(1, 3)):
            mutator.bend(plausible)
        yield Case(method, "mutation", plausible.SerializeToString())
