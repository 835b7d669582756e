"""The OpenADR 3.0.1 `program` object, as the VTN's GET /programs returns it.

Written here rather than taken from an OpenADR client package: the probe
needs only this one schema, and the client packages bring a second HTTP
stack and datetime library with them. Unknown properties are allowed (the
specification lets VTNs extend objects); known ones must have their
specified types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ObjectId = Field(pattern=r"^[a-zA-Z0-9_-]*$", min_length=1, max_length=128)


class _Schema(BaseModel):
    model_config = ConfigDict(
        extra="allow", alias_generator=AliasGenerator(validation_alias=to_camel), populate_by_name=True
    )


class IntervalPeriod(_Schema):
    start: datetime
    duration: str | None = None
    randomize_start: str | None = None


class ValuesMap(_Schema):
    type: str = Field(min_length=1, max_length=128)
    values: list[str | int | float | bool | dict[str, object]]


class ProgramDescription(_Schema):
    url: str = Field(validation_alias="URL")


class Program(_Schema):
    id: str = ObjectId
    created_date_time: datetime
    modification_date_time: datetime
    object_type: Literal["PROGRAM"] | None = None
    program_name: str = Field(min_length=1, max_length=128)
    program_long_name: str | None = None
    retailer_name: str | None = None
    retailer_long_name: str | None = None
    program_type: str | None = None
    country: str | None = None
    principal_subdivision: str | None = None
    time_zone_offset: str | None = None
    interval_period: IntervalPeriod | None = None
    program_descriptions: list[ProgramDescription] | None = None
    binding_events: bool | None = None
    local_price: bool | None = None
    payload_descriptors: list[dict[str, object]] | None = None
    targets: list[ValuesMap] | None = None
