"""Config section `codec:` (owned by satflow.codecs) and the learned model's architecture (`train.model`, which
checkpoints carry and `satflow.codecs.learned.model` builds from)."""

from __future__ import annotations

from pydantic import Field, model_validator

from satflow.options import Section


class CodecConfig(Section):
    """The codec `satflow encode` (and evaluation) uses: `get_codec(name, **params)`.

    Learned codecs take their checkpoint here too, e.g. `params: {checkpoint: runs/a/best.pt}`;
    `errorbound` wraps another codec: `name: errorbound, params: {inner: sz3, eps: 0.5}`.
    """

    name: str = Field("lossless", description="registered codec name (see `satflow codecs`)")
    params: dict = Field(default_factory=dict, description="keyword parameters of that codec (see `satflow codecs`)")


class ArchitectureConfig(Section):
    """VAEformerLite architecture (the number of features comes from the store)."""

    patch_size: int = Field(4, gt=0, description="stride of the patch embedding")
    dim: int = Field(64, gt=0, description="transformer width")
    depth: int = Field(2, ge=0, description="transformer blocks in the analysis and in the synthesis")
    heads: int = Field(4, gt=0, description="attention heads (must divide dim)")
    window: int = Field(8, gt=0, description="attention window side, in tokens")
    mlp_ratio: float = Field(2.0, gt=0, description="hidden width of the token MLP / dim")
    latent_channels: int = Field(32, gt=0, description="channels of the latent y")
    hyper_channels: int = Field(24, gt=0, description="channels of the hyper-latent z")
    hyper_hidden: int = Field(48, gt=0, description="width of the hyper transforms")
    refine_channels: int = Field(16, ge=0, description="full-resolution mask-aware refinement width (0 = none)")

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> ArchitectureConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        return self
