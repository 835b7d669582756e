"""Oracles: versioned time-of-use tariffs and signed real-time price feeds,
expanded into the UTC price segments the Rust pricer multiplies against.

Tariffs are written in the utility's wall-clock time, so expansion walks
local days: a day with a DST change is 23 or 25 hours long and its periods
map to the real instants they cover. A local time that does not exist (the
spring-forward gap) maps to the first instant after the gap, so periods
stay contiguous and a period wholly inside the gap is simply empty.

A feed point prices energy from its time until the next point or its
maximum age, whichever is first; energy outside every point's reach has
no price and waits for one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import base58
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity, Role
from openvpp.kernel.programs import denied
from openvpp.store import oracle_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

FEED_DOMAIN = b"openvpp/price-feed/v1"
POINT = struct.Struct("<qQQ")
MAX_POINTS = 10_000
MINUTES_PER_DAY = 1440
_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

Segment = tuple[int, int, int]


def _code(value: str, field: str = "code") -> str:
    if not _CODE.match(value):
        raise errors.InvalidArgument.field(field, "must be 1-63 lowercase letters, digits or dashes")
    return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise errors.InvalidArgument.field("time_zone", f"{name!r} is not an IANA time zone") from None


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise errors.InvalidArgument.field("effective_from", "must be a date, YYYY-MM-DD") from None


def check_periods(periods: Sequence[pb.TariffPeriod]) -> None:
    """Every minute of every weekday in exactly one period."""
    if not periods:
        raise errors.InvalidArgument.field("periods", "at least one period is required")
    for i, p in enumerate(periods):
        if not 0 < p.days_mask < 128:
            raise errors.InvalidArgument.field(f"periods[{i}].days_mask", "bits 0 (Monday) to 6 (Sunday), not empty")
        if not 0 <= p.start_minute < p.end_minute <= MINUTES_PER_DAY:
            raise errors.InvalidArgument.field(f"periods[{i}]", "needs 0 <= start_minute < end_minute <= 1440")
    for day in range(7):
        spans = sorted((p.start_minute, p.end_minute) for p in periods if p.days_mask >> day & 1)
        at = 0
        for start, end in spans:
            if start != at:
                what = "overlap" if start < at else "leave a gap"
                raise errors.InvalidArgument.field(
                    "periods", f"periods {what} at minute {min(start, at)} of weekday {day} (0 = Monday)"
                )
            at = end
        if at != MINUTES_PER_DAY:
            raise errors.InvalidArgument.field("periods", f"weekday {day} (0 = Monday) is not covered from minute {at}")


def local_instant(day: dt.date, minute: int, zone: ZoneInfo) -> int:
    """Unix seconds of a wall-clock minute; a minute inside a DST gap maps to the gap's end."""
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
    for step in range(0, 181):
        candidate = naive + dt.timedelta(minutes=step)
        stamp = int(candidate.replace(tzinfo=zone).timestamp())
        if dt.datetime.fromtimestamp(stamp, zone).replace(tzinfo=None) == candidate:
            return stamp
    raise ValueError(f"no valid local time near {naive} in {zone}")


@dataclass(frozen=True, slots=True)
class TariffVersion:
    tariff_id: str
    utility: str
    version: int
    time_zone: str
    effective_from: dt.date
    periods: tuple[pb.TariffPeriod, ...]
    published_at_us: int

    @classmethod
    def from_row(cls, row: Any) -> TariffVersion:
        body = pb.Tariff.FromString(row.body)
        return cls(
            row.tariff_id,
            row.utility_namespace,
            row.version,
            row.time_zone,
            dt.date.fromisoformat(row.effective_from),
            tuple(body.periods),
            row.published_at_us,
        )

    def message(self) -> pb.Tariff:
        utility, code = self.tariff_id.split("/", 1)
        return pb.Tariff(
            tariff_id=self.tariff_id,
            utility_id=utility,
            code=code,
            version=self.version,
            time_zone=self.time_zone,
            effective_from=self.effective_from.isoformat(),
            periods=self.periods,
        )


def tariff_segments(
    versions: Sequence[TariffVersion], start: int, end: int, rate: Callable[[pb.TariffPeriod], int]
) -> list[Segment]:
    """UTC segments [start, end) priced by `rate` of the version in force each local day."""
    if not versions or start >= end:
        return []
    ordered = sorted(versions, key=lambda v: (v.effective_from, v.version))
    zone = ZoneInfo(ordered[0].time_zone)
    first = dt.datetime.fromtimestamp(start, zone).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(end, zone).date() + dt.timedelta(days=1)
    out: list[Segment] = []
    day = first
    while day <= last:
        in_force = [v for v in ordered if v.effective_from <= day]
        if in_force:
            version = in_force[-1]
            zone = ZoneInfo(version.time_zone)
            weekday = day.weekday()
            for p in sorted(version.periods, key=lambda p: p.start_minute):
                if not p.days_mask >> weekday & 1:
                    continue
                a = max(local_instant(day, p.start_minute, zone), start)
                b = min(local_instant(day, p.end_minute, zone), end)
                if a < b:
                    _append(out, (a, b, rate(p)))
        day += dt.timedelta(days=1)
    return out


def _append(out: list[Segment], seg: Segment) -> None:
    # Versions in different zones could overlap at a change-over: the later day wins.
    while out and out[-1][1] > seg[0]:
        a, _b, r = out.pop()
        if a < seg[0]:
            out.append((a, seg[0], r))
            break
    if out and out[-1][1] == seg[0] and out[-1][2] == seg[2]:
        out[-1] = (out[-1][0], seg[1], seg[2])
    else:
        out.append(seg)


def feed_segments(
    points: Sequence[tuple[int, int, int]], max_age: int, start: int, end: int, column: int
) -> list[Segment]:
    """Segments from sorted (at, price, carbon) points; `column` 1 = price, 2 = carbon."""
    out: list[Segment] = []
    for i, point in enumerate(points):
        until = point[0] + max_age
        if i + 1 < len(points):
            until = min(until, points[i + 1][0])
        a, b = max(point[0], start), min(until, end)
        if a < b:
            _append(out, (a, b, point[column]))
    return out


@dataclass(frozen=True, slots=True)
class Feed:
    feed_id: str
    utility: str
    oracle_key: str
    max_age_seconds: int
    latest: int = 0

    def message(self) -> pb.PriceFeed:
        utility, code = self.feed_id.split("/", 1)
        return pb.PriceFeed(
            feed_id=self.feed_id,
            utility_id=utility,
            code=code,
            oracle_key=self.oracle_key,
            max_age_seconds=self.max_age_seconds,
            latest_point_unix=self.latest,
        )


def _utility(caller: Identity) -> str:
    if caller.role is not Role.UTILITY:
        raise denied("publish oracles as a utility")
    return caller.namespace


class Oracles:
    def __init__(self, db: Database, clock_us: Clock = clock.system) -> None:
        self.db = db
        self.clock_us = clock_us

    # -- tariffs --------------------------------------------------------------

    async def publish_tariff(
        self, caller: Identity, code: str, time_zone: str, effective_from: str, periods: Sequence[pb.TariffPeriod]
    ) -> TariffVersion:
        utility = _utility(caller)
        tariff_id = f"{utility}/{_code(code)}"
        _zone(time_zone)
        start = _date(effective_from)
        check_periods(periods)
        async with self.db.write() as conn:
            versions = await self._versions(conn, tariff_id)
            if versions:
                newest = max(v.effective_from for v in versions)
                today = dt.datetime.fromtimestamp(clock.seconds(self.clock_us), ZoneInfo(versions[-1].time_zone)).date()
                # Energy already priced stays priced: a new version may not reach back.
                if start <= today or start < newest:
                    raise errors.FailedPrecondition(
                        f"a new version must take effect after today ({today}) and not before {newest}; "
                        "published prices are never changed",
                        "TARIFF_IMMUTABLE",
                        violations=[errors.FieldViolation("effective_from", "must be a future date")],
                    )
            version = TariffVersion(
                tariff_id, utility, len(versions) + 1, time_zone, start, tuple(periods), self.clock_us()
            )
            await oracle_repo.insert_tariff(
                conn,
                {
                    "tariff_id": tariff_id,
                    "version": version.version,
                    "utility_namespace": utility,
                    "time_zone": time_zone,
                    "effective_from": start.isoformat(),
                    "body": version.message().SerializeToString(),
                    "published_at_us": version.published_at_us,
                },
            )
        return version

    async def _versions(self, conn: AsyncConnection, tariff_id: str) -> list[TariffVersion]:
        return [TariffVersion.from_row(r) for r in await oracle_repo.tariff_versions(conn, tariff_id)]

    async def tariff(self, tariff_id: str) -> list[TariffVersion]:
        async with self.db.read() as conn:
            versions = await self._versions(conn, tariff_id)
        if not versions:
            raise errors.NotFound(f"no tariff {tariff_id}", "TARIFF_NOT_FOUND")
        return versions

    # -- price feeds ------------------------------------------------------------

    async def register_feed(self, caller: Identity, code: str, oracle_key: str, max_age_seconds: int) -> Feed:
        utility = _utility(caller)
        feed_id = f"{utility}/{_code(code)}"
        try:
            if len(base58.b58decode(oracle_key)) != 32:
                raise ValueError
        except ValueError:
            raise errors.InvalidArgument.field("oracle_key", "must be a base58 ed25519 public key") from None
        if not 60 <= max_age_seconds <= 86_400:
            raise errors.InvalidArgument.field("max_age_seconds", "must be between 60 and 86,400")
        async with self.db.write() as conn:
            if await oracle_repo.feed(conn, feed_id) is not None:
                raise errors.AlreadyExists(f"price feed {feed_id} exists", "FEED_EXISTS")
            await oracle_repo.insert_feed(
                conn,
                {
                    "feed_id": feed_id,
                    "utility_namespace": utility,
                    "oracle_key": oracle_key,
                    "max_age_seconds": max_age_seconds,
                    "created_at_us": self.clock_us(),
                },
            )
        return Feed(feed_id, utility, oracle_key, max_age_seconds)

    async def feed(self, feed_id: str, conn: AsyncConnection | None = None) -> Feed:
        async def load(c: AsyncConnection) -> Feed:
            row = await oracle_repo.feed(c, feed_id)
            if row is None:
                raise errors.NotFound(f"no price feed {feed_id}", "FEED_NOT_FOUND")
            latest = await oracle_repo.latest_point(c, feed_id)
            return Feed(feed_id, row.utility_namespace, row.oracle_key, row.max_age_seconds, latest or 0)

        if conn is not None:
            return await load(conn)
        async with self.db.read() as c:
            return await load(c)

    async def publish_points(self, feed_id: str, points: bytes, signature: bytes) -> tuple[Feed, int]:
        """Verifies the oracle's signature over the bytes as received, then stores
        new points; a point already stored with other values refuses the whole publication."""
        count, rest = divmod(len(points), POINT.size)
        if rest or count == 0:
            raise errors.InvalidArgument.field("points", "must be one or more 24-byte points", "MALFORMED_POINTS")
        if count > MAX_POINTS:
            raise errors.ResourceExhausted(
                f"{count} points in one publication; at most {MAX_POINTS}", "TOO_MANY_POINTS"
            )
        if len(signature) != native.SIGNATURE_LEN:
            raise errors.InvalidArgument.field("signature", "must be 64 bytes")
        feed = await self.feed(feed_id)
        message = feed_id.encode() + b"\x00" + points
        (verdict,) = native.verify_ed25519(
            FEED_DOMAIN, [native.SignedItem(base58.b58decode(feed.oracle_key), signature, message)]
        )
        if verdict is not native.SignatureVerdict.VALID:
            raise errors.PermissionDenied(
                f"points are not signed by the oracle key of {feed_id}", "BAD_ORACLE_SIGNATURE"
            )
        decoded = list(POINT.iter_unpack(points))
        if any(b[0] <= a[0] for a, b in itertools.pairwise(decoded)):
            raise errors.InvalidArgument.field("points", "times must be strictly increasing", "MALFORMED_POINTS")
        async with self.db.write() as conn:
            stored = {p[0]: p for p in await oracle_repo.points_between(conn, feed_id, decoded[0][0], decoded[-1][0])}
            clash = next((p for p in decoded if p[0] in stored and stored[p[0]] != p), None)
            if clash is not None:
                raise errors.FailedPrecondition(
                    f"a point at {clash[0]} was already published with other values; prices are never changed",
                    "POINT_CONFLICT",
                    metadata={"at": str(clash[0])},
                )
            fresh = [p for p in decoded if p[0] not in stored]
            pid = await oracle_repo.insert_publication(conn, feed_id, points, signature, self.clock_us())
            await oracle_repo.insert_points(conn, feed_id, pid, fresh)
            feed = await self.feed(feed_id, conn)
        return feed, len(fresh)

    async def points(self, conn: AsyncConnection, feed_id: str, start: int, end: int) -> list[tuple[int, int, int]]:
        """Points that can reach [start, end): from the last one at or before start."""
        return await oracle_repo.points_reaching(conn, feed_id, start, end)
