"""`ingest.source.profiles`: how in-situ profile files (EN4, Argo) become gridded depth levels.

Kept apart from satflow.config so that the options live with the source that reads them (and so
that this module imports pydantic only: satflow.config imports it without importing a source).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The levels of `satflow sample ocean`: a store of the ocean sample and its profiles lines up by default.
SAMPLE_OCEAN_DEPTHS = (0.5, 10.0, 50.0, 100.0, 200.0)


class ProfilesConfig(BaseModel):
    """Profiles resampled onto a depth axis, then averaged per grid cell and level over one file (month)."""

    model_config = ConfigDict(extra="forbid")

    variables: list[str] = Field(default_factory=lambda: ["POTM_CORRECTED"], min_length=1,
                                 description="value variables on (N_PROF, N_LEVELS), e.g. POTM_CORRECTED, TEMP, PSAL")
    names: dict[str, str] = Field(default_factory=lambda: {"POTM_CORRECTED": "thetao", "PSAL_CORRECTED": "so"},
                                  description="variable -> feature name (features <name>-d<k>, <name>-count); "
                                  "a variable not listed keeps its own name")
    depths: list[float] | None = Field(None, description="target depth axis in metres, ascending; null: the "
                                       "depth coordinate of depth_from, or without it the ocean sample's levels "
                                       f"{list(SAMPLE_OCEAN_DEPTHS)}")
    depth_from: str | None = Field(None, description="gridded NetCDF file whose depth coordinate is the target axis "
                                   "(e.g. a reanalysis file); replaces `depths`")
    resample: Literal["nearest", "linear"] = Field(
        "linear", description="linear: between the two valid levels bracketing a target depth (none outside the "
        "profile's range); nearest: the nearest valid level within max_distance_m")
    max_distance_m: float = Field(10.0, gt=0, description="nearest: farthest level (m) that may stand for a depth")
    accepted_qc: list[str] = Field(default_factory=lambda: ["1"], min_length=1,
                                   description="accepted flags of <VAR>_QC (level-wise), POSITION_QC and JULD_QC")
    accepted_profile_qc: list[str] = Field(default_factory=lambda: ["1", "A"], min_length=1,
                                           description="accepted flags of PROFILE_<VAR>_QC (EN4 '1', Argo grade 'A' = "
                                           "all levels good)")
    resolution: float | None = Field(2.0, gt=0, le=90, description="grid spacing in degrees (must tile 180 and "
                                     "360); null: the lat/lon grid of depth_from, cell for cell")
    count_name: str = Field("count", description="per-cell profile count feature <name>-<count_name>")

    @property
    def listed_depths(self) -> tuple[float, ...]:
        """The depths given in the config (or the default axis); depth_from, when set, replaces them."""
        return tuple(SAMPLE_OCEAN_DEPTHS if self.depths is None else self.depths)

    @field_validator("accepted_qc", "accepted_profile_qc", mode="before")
    @classmethod
    def _single_characters(cls, values):
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"give a list of flags such as ['1', '2'] (got {values!r})")
        values = [str(v) for v in values]  # YAML reads an unquoted 1 as a number
        bad = [v for v in values if len(v) != 1]
        if bad:
            raise ValueError(f"QC flags are single characters such as '1' (got {bad})")
        return values

    @field_validator("depths")
    @classmethod
    def _ascending(cls, values: list[float] | None) -> list[float] | None:
        if values is None:
            return values
        if not values:
            raise ValueError("give at least one target depth (metres), or depth_from")
        if any(v < 0 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"depths must be >= 0 and strictly ascending (got {values})")
        return values

    @model_validator(mode="after")
    def _one_axis_and_whole_cells(self) -> ProfilesConfig:
        if self.depth_from is not None and self.depths is not None:
            raise ValueError("give either depths or depth_from, not both")
        if self.resolution is None:
            if self.depth_from is None:
                raise ValueError("resolution null takes the grid of depth_from: set depth_from, or a resolution")
            return self
        for span in (180.0, 360.0):
            if abs(span / self.resolution - round(span / self.resolution)) > 1e-9:
                raise ValueError(f"resolution {self.resolution} does not tile {span:g} degrees into whole cells")
        return self
