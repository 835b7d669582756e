"""Deterministic, plausible energy for each device, per 15-minute interval.

The same seed gives the same weather and the same households. Each kind
has its own shape: rooftop solar follows the sun through passing clouds;
a household meter nets its load against its own panels; a battery soaks up
the midday surplus and discharges into the evening peak; an EV charges
when its driver gets home; a heat pump tracks the cold mornings and
evenings. On a demand-response event day the DR-enrolled devices respond:
batteries discharge harder, chargers wait, heat pumps pre-heat and back
off, households turn things down.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from openvpp.v1 import common_pb2

STEP = 900
Kind = int


@dataclass(frozen=True)
class Day:
    """One local day as UTC interval ends (23, 24 or 25 hours of them)."""

    date: dt.date
    ends: np.ndarray  # int64 epoch seconds of each interval's end
    hours: np.ndarray  # local hour of each interval's midpoint, fractional

    @classmethod
    def of(cls, date: dt.date, zone: ZoneInfo) -> Day:
        start = int(dt.datetime.combine(date, dt.time(), zone).timestamp())
        stop = int(dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), zone).timestamp())
        ends = np.arange(start + STEP, stop + 1, STEP, dtype=np.int64)
        hours = np.array(
            [
                (lambda t: t.hour + t.minute / 60 + t.second / 3600)(
                    dt.datetime.fromtimestamp(int(e) - STEP // 2, zone)
                )
                for e in ends
            ]
        )
        return cls(date, ends, hours)


@dataclass(frozen=True)
class Window:
    """A DR event in local hours of its day."""

    start_hour: float
    end_hour: float


class Fleet:
    """Per-device parameters drawn once from the seed."""

    def __init__(self, kinds: list[Kind], capacities_w: list[tuple[int, int]], seed: int) -> None:
        self.kinds = np.array(kinds)
        self.seed = seed
        rng = np.random.default_rng(seed)
        n = len(kinds)
        max_import = np.array([c[0] for c in capacities_w], dtype=float)
        max_export = np.array([c[1] for c in capacities_w], dtype=float)
        self.pv_w = np.where(self.kinds == common_pb2.DEVICE_KIND_SOLAR_INVERTER, max_export, 0.0) * rng.uniform(
            0.55, 0.95, n
        )
        # Half of the metered households have panels of their own.
        metered = self.kinds == common_pb2.DEVICE_KIND_METER
        self.pv_w += np.where(metered & (rng.random(n) < 0.5), rng.uniform(3_000, 6_000, n), 0.0)
        self.load_scale = rng.uniform(0.6, 1.6, n)
        self.battery_w = np.minimum(max_export, max_import) * np.where(
            self.kinds == common_pb2.DEVICE_KIND_BATTERY, 1.0, 0.0
        )
        self.ev_w = np.where(self.kinds == common_pb2.DEVICE_KIND_EV_CHARGER, np.minimum(max_import, 7_200.0), 0.0)
        self.ev_arrival = rng.uniform(17.0, 19.5, n)
        self.ev_need_wh = rng.uniform(6_000, 22_000, n)
        self.hp_w = np.where(self.kinds == common_pb2.DEVICE_KIND_HEAT_PUMP, max_import * 0.8, 0.0)
        self.max_import_wh = max_import * STEP / 3600
        self.max_export_wh = max_export * STEP / 3600

    def day(self, day: Day, event: Window | None, dr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(import Wh, export Wh) per device and interval; `dr` marks who responds to `event`."""
        rng = np.random.default_rng([self.seed, day.date.toordinal()])
        n, m = len(self.kinds), len(day.ends)
        h = day.hours[None, :]
        quarter = STEP / 3600
        # The sun: a seasonal day length, a clear-sky arch, the day's clearness and passing clouds.
        length = 12 + 2.4 * math.cos(2 * math.pi * (day.date.timetuple().tm_yday - 172) / 365)
        rise, set_ = 12.5 - length / 2, 12.5 + length / 2
        arch = np.clip(np.sin(np.pi * (h - rise) / (set_ - rise)), 0, None) ** 1.3
        clearness = rng.uniform(0.55, 1.0)
        clouds = 1 - 0.45 * (rng.random((1, m)) < 0.25 * (1.1 - clearness)) * rng.random((1, m))
        pv = self.pv_w[:, None] * arch * clearness * clouds * rng.uniform(0.93, 1.0, (n, m)) * quarter
        # Households: a night base, a morning bump and the long evening peak.
        shape = 0.35 + 0.6 * np.exp(-(((h - 7.5) / 1.3) ** 2)) + 1.5 * np.exp(-(((h - 19.0) / 2.2) ** 2))
        load = 1_000 * self.load_scale[:, None] * shape * rng.uniform(0.8, 1.2, (n, m)) * quarter
        load *= (self.kinds == common_pb2.DEVICE_KIND_METER)[:, None]
        during = np.zeros((n, m), dtype=bool)
        before = np.zeros((n, m), dtype=bool)
        if event is not None:
            during = dr[:, None] & (h >= event.start_hour) & (h < event.end_hour)
            before = dr[:, None] & (h >= event.start_hour - 1) & (h < event.start_hour)
        load = np.where(during, load * 0.8, load)
        # Batteries: charge from the midday surplus, discharge into the peak (harder when called).
        charge = ((h >= 10) & (h < 14)) * 0.55
        discharge = ((h >= 17) & (h < 21)) * 0.5
        battery = self.battery_w[:, None] * quarter
        battery_in = battery * charge + battery * 0.004
        battery_out = np.where(during, battery * 0.8, battery * discharge)
        # Chargers: from the driver's arrival until the need is met; called, they wait for the event's end.
        ev_in = np.zeros((n, m))
        start = np.where(dr & (event is not None), np.maximum(self.ev_arrival, event.end_hour if event else 0), 0)
        start = np.where(start > 0, start, self.ev_arrival)
        plugged = rng.random(n) < 0.75
        for i in np.flatnonzero((self.ev_w > 0) & plugged):
            left = self.ev_need_wh[i]
            for j in np.flatnonzero(day.hours >= start[i]):
                take = min(left, self.ev_w[i] * quarter)
                ev_in[i, j] = take
                left -= take
                if left <= 0:
                    break
        # Heat pumps: cold mornings and evenings; called, they pre-heat, then back off.
        cold = 0.35 + 0.5 * np.exp(-(((h - 6.5) / 2.0) ** 2)) + 0.55 * np.exp(-(((h - 19.5) / 2.5) ** 2))
        hp = self.hp_w[:, None] * cold * rng.uniform(0.85, 1.1, (n, m)) * quarter
        hp = np.where(during, hp * 0.4, np.where(before, hp * 1.3, hp))
        net = load - pv * (self.kinds == common_pb2.DEVICE_KIND_METER)[:, None]
        imports = np.clip(net, 0, None) + battery_in + ev_in + hp
        exports = np.clip(-net, 0, None) + battery_out
        exports += pv * (self.kinds == common_pb2.DEVICE_KIND_SOLAR_INVERTER)[:, None]
        imports = np.minimum(imports, self.max_import_wh[:, None])
        exports = np.minimum(exports, self.max_export_wh[:, None])
        return np.floor(imports).astype(np.int64), np.floor(exports).astype(np.int64)
