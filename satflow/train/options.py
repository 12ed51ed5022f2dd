"""Config section `train:` (owned by satflow.train): stages, optimisation, validation; the model architecture
(`train.model`) is the codec's, in `satflow.codecs.options`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from satflow.codecs.options import ArchitectureConfig
from satflow.options import Section


class ContextTrainConfig(Section):
    """Stage `context`: the causal context network of errorbound(context="learned")."""

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


class TrainConfig(Section):
    """`satflow train`: stages, optimisation, validation and the model architecture."""

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
