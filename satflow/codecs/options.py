"""Config sections `codec:` and `train:` (owned by satflow.codecs and satflow.train)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CodecConfig(BaseModel):
    """The codec `satflow encode` (and evaluation) uses: `get_codec(name, **params)`.

    Learned codecs take their checkpoint here too, e.g. `params: {checkpoint: runs/a/best.pt}`;
    `errorbound` wraps another codec: `name: errorbound, params: {inner: sz3, eps: 0.5}`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field("lossless", description="registered codec name (see `satflow codecs`)")
    params: dict = Field(default_factory=dict, description="keyword parameters of that codec (see `satflow codecs`)")


class ArchitectureConfig(BaseModel):
    """VAEformerLite architecture (the number of features comes from the store)."""

    model_config = ConfigDict(extra="forbid")

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


class ContextTrainConfig(BaseModel):
    """Stage `context`: the causal context network of errorbound(context="learned")."""

    model_config = ConfigDict(extra="forbid")

    hidden: int = Field(64, ge=1, le=128, description="hidden width of each feature's MLP")
    points: int = Field(2048, gt=0, description="training points per feature and step")
    steps_per_batch: int = Field(4, gt=0, description="optimizer steps per batch of patches (fresh points and noise)")
    noise: tuple[float, float] = Field(
        (1e-3, 0.1), description="range of the input noise eps in standard deviations (log-uniform): the "
        "error bounds the network will serve, eps / std")
    reference_eps: float = Field(0.02, gt=0, description="eps / std at which validation estimates bits per value")

    @model_validator(mode="after")
    def _ordered(self) -> ContextTrainConfig:
        if not 0 < self.noise[0] <= self.noise[1]:
            raise ValueError(f"noise must be 0 < low <= high, got {self.noise}")
        return self


class TrainConfig(BaseModel):
    """`satflow train`: stages, optimisation, validation and the model architecture."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["pretrain", "finetune-entropy", "context"] = Field(
        "pretrain",
        description="pretrain: all weights on masked MSE (+ rate); finetune-entropy: transforms frozen, "
        "hyperprior and entropy models on lmbda * D + R; context: the causal context network of "
        "errorbound(context='learned') (the transform codec untouched)",
    )
    epochs: int = Field(1, gt=0, description="epochs of this stage (a resumed run continues to this total)")
    batch_size: int = Field(16, gt=0, description="patches per step (per process under DDP)")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="learning rate over the pretrain and finetune-entropy stages: constant, or "
        "cosine decay from train.lr to 0 at train.epochs (per step, from the epoch and step counters, so a run "
        "resumed with the same train.epochs follows the same curve); "
        "the context stage always decays",
    )
    grad_clip: float = Field(1.0, ge=0, description="gradient norm clip (0 = off)")
    lmbda: float = Field(
        100.0, gt=0, description="rate-distortion weight: loss = lmbda * D + R (D: masked MSE, normalised units; "
        "R: bits per valid value)"
    )
    pretrain_rate: bool = Field(True, description="include R in the pretrain loss (else masked MSE only)")
    distortion: Literal["normalised", "physical"] = Field(
        "normalised",
        description="D of the loss: normalised = masked MSE in z-score units (every feature weighs the same); "
        "physical = each feature's squared error weighted by its variance over the mean variance (the "
        "MSE in physical units, rescaled): what a pooled RMSE in kelvin measures, so wide-range features "
        "(window channels) get the bits",
    )
    max_steps_per_epoch: int | None = Field(None, gt=0, description="cap on steps per epoch (None = whole split)")
    val_patches: int = Field(8, ge=0, description="val patches coded into real bitstreams each epoch")
    augment: bool = Field(True, description="random rot90 / flips of each batch")
    cache: bool = Field(True, description="keep loaded patches in memory (small stores; with num_workers=0)")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    device: str = Field("auto", description="cpu, cuda, cuda:N or auto")
    amp: Literal["none", "bf16", "fp16"] = Field("bf16", description="autocast dtype on GPU (ignored on CPU)")
    seed: int = 0
    log_every: int = Field(50, gt=0, description="log the running loss every N steps")
    model: ArchitectureConfig = Field(default_factory=ArchitectureConfig)
    context: ContextTrainConfig = Field(default_factory=ContextTrainConfig)
