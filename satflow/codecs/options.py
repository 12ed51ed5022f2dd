"""Config sections `codec:` and `train:` (owned by satflow.codecs and satflow.train)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CodecConfig(BaseModel):
    """The codec `satflow encode` (and evaluation) uses: `get_codec(name, **params)`.

    Learned codecs take their checkpoint here too, e.g. `params: {checkpoint: runs/a/best.pt}`;
    `errorbound` wraps another codec: `name: errorbound, params: {inner: sz3, eps: 0.5}`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field("lossless", description="registered codec name (see `satflow codecs`)")
    params: dict = Field(default_factory=dict, description="keyword parameters of that codec (see `satflow codecs`)")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, gt=0)
