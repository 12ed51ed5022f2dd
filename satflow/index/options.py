"""Config section `index:` (owned by satflow.index)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IndexConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patch_size: int = Field(64, gt=0, description="patch height and width in grid cells")
    stride: int = Field(64, gt=0, description="step between patch origins; < patch_size overlaps")
    max_nodata_fraction: float = Field(0.5, ge=0.0, le=1.0)
