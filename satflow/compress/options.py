"""Config section `compress:` (owned by satflow.compress); every key is also a flag of `satflow compress`."""

from __future__ import annotations

from pydantic import Field

from satflow.options import Section


class CompressChunks(Section):
    """Chunk shape of the compressed store in cells; unset = the input store's chunk along that dimension.

    One chunk of X is one satflow container per time step, so the chunk is also the codec's block.
    """

    time: int | None = Field(None, gt=0, description="time steps per chunk (default: the input's)")
    feature: int | None = Field(None, gt=0, description="features per chunk (default: the input's)")
    lat: int | None = Field(None, gt=0, description="chunk height in cells (default: the input's)")
    lon: int | None = Field(None, gt=0, description="chunk width in cells (default: the input's)")


class CompressConfig(Section):
    codec: str | dict | None = Field(
        None, description="codec spec for X: NAME or NAME:KEY=VALUE,... e.g. sz3:tol=0.5 (required)")
    chunks: CompressChunks = Field(default_factory=CompressChunks)
    retries: int = Field(2, ge=0, description="retries of a task whose worker died")
