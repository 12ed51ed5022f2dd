"""Config sections `codec:` and `train:` (owned by satflow.codecs and satflow.train)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CodecConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("lossless", description="registered codec name (see `satflow codecs`)")
    params: dict = Field(default_factory=dict, description="keyword parameters of that codec")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, gt=0)
