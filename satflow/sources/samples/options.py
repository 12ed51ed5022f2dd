"""Config section `sample:` (owned by satflow.sources.samples): which sample files `satflow sample` writes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from satflow.options import Section


class SampleConfig(Section):
    kind: Literal["amsua", "amsua-swath", "ocean", "profiles"] = "amsua"
    start: str = "2020-01-01"
    steps: int = Field(8, gt=0, description="files to write (6-hourly for amsua, monthly for ocean); "
                       "6-hourly windows for amsua-swath")
    resolution: float = Field(2.0, gt=0, le=10, description="grid spacing in degrees (0.25 = real product)")
    seed: int = 0
