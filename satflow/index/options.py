"""Config section `index:` (owned by satflow.index).

Every key is also a flag of `satflow index` (flags win over the file). Nested sections keep the
concerns apart: which patches exist (top level), how they are split, stratified, paired into
triplets and grouped into time windows.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from satflow.options import Section


class BoundingBox(Section):
    """Keep patches whose centre lies in this box; lon_min > lon_max crosses the dateline."""

    lat_min: float = Field(-90.0, ge=-90, le=90)
    lat_max: float = Field(90.0, ge=-90, le=90)
    lon_min: float = -180.0
    lon_max: float = 180.0

    @model_validator(mode="after")
    def _ordered(self) -> BoundingBox:
        if self.lat_min >= self.lat_max:
            raise ValueError(f"lat_min ({self.lat_min}) must be below lat_max ({self.lat_max})")
        return self


class SplitConfig(Section):
    """Leak-free splits: whole geographic windows (or contiguous time blocks) go to one split."""

    mode: Literal["space", "time"] = Field(
        "space", description="space: geographic windows keep their split at every time; time: blocked time"
    )
    train: float = Field(0.8, ge=0, le=1)
    val: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    seed: int = 0
    window_patches: int = Field(4, gt=0, description="window side in patch sizes (space mode)")
    window_degrees: float | None = Field(None, gt=0, description="window side in degrees; overrides window_patches")
    time_block: int = Field(8, gt=0, description="time steps per contiguous block (time mode)")
    time_buffer: int = Field(
        0, ge=0, description="time mode: steps at a boundary between blocks of different splits marked 'buffer'"
    )

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1 (got {self.train} + {self.val} + {self.test} = {total:g})")
        return self


class StratifyConfig(Section):
    """Strata from a per-patch statistic of one feature, or from an external label mask."""

    feature: str | None = Field(None, description="feature whose per-patch statistic defines strata (e.g. tmbrs-15)")
    statistic: str = Field("p05", description="min, max, mean, median or pNN (percentile), over valid cells")
    bins: int = Field(4, gt=0, description="number of quantile bins")
    labels: str | None = Field(None, description="NetCDF file or Zarr store of labels (time, lat, lon)")
    label_variable: str | None = Field(None, description="variable in `labels`; default: the only data variable")
    label_edges: list[float] | None = Field(
        None, description="bin edges of the labelled-area fraction; default: quantile bins"
    )
    time_tolerance: str = Field("3h", description="largest time difference when matching a label field")


class TripletConfig(Section):
    """Tile2Vec-style triplets: anchor, neighbour `distance` tiles away, distant patch at another time."""

    distance: int = Field(1, gt=0, description="neighbour offset in tiles (patch sizes)")
    n_per_split: int | None = Field(None, gt=0, description="anchors per split; default: every row")
    seed: int = 0


class TimeWindowConfig(Section):
    """Sequences of `length` time steps per location: contiguous, or the best `length` of `span`."""

    length: int = Field(4, gt=0, description="time steps per sequence (k)")
    span: int | None = Field(None, gt=0, description="choose the best k of this many consecutive steps (n)")
    step: int | None = Field(None, gt=0, description="start-to-start distance; default: span or length")
    min_valid_frac: float = Field(0.0, ge=0, le=1, description="best-k-of-n: members need at least this")

    @model_validator(mode="after")
    def _span_holds_length(self) -> TimeWindowConfig:
        if self.span is not None and self.span < self.length:
            raise ValueError(f"span ({self.span}) must be at least length ({self.length})")
        return self


class IndexConfig(Section):
    patch_size: int = Field(64, gt=0, description="patch height and width in grid cells")
    stride: int = Field(64, gt=0, description="step between patch origins; < patch_size overlaps")
    max_nodata_fraction: float = Field(0.5, ge=0.0, le=1.0, description="over all features of a patch")
    min_feature_valid_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="every feature must have at least this valid fraction"
    )
    time_start: str | None = Field(None, description="first time to index (ISO), inclusive")
    time_end: str | None = Field(None, description="last time to index (ISO), inclusive")
    bbox: BoundingBox | None = None
    per_feature_columns: bool = Field(False, description="add valid_frac_<feature> columns")
    time_batch: int = Field(64, gt=0, description="time chunks computed per batch; bounds the builder's memory")
    split: SplitConfig = Field(default_factory=SplitConfig)
    stratify: StratifyConfig = Field(default_factory=StratifyConfig)
    triplets: TripletConfig = Field(default_factory=TripletConfig)
    windows: TimeWindowConfig = Field(default_factory=TimeWindowConfig)
