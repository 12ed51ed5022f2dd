"""Training VAEformerLite on the patch index's train split (`satflow train`: `satflow.cli.train`).

Stages (`train.stage`):
- `pretrain`: every weight, on masked MSE in normalised space (+ the rate R when
  `train.pretrain_rate`, as lmbda * D + R); `train.distortion = physical` weights each feature's
  squared error by its variance (an MSE in physical units, rescaled);
- `finetune-entropy`: analysis and synthesis frozen, the hyperprior and entropy models trained on
  lmbda * D + R (R from likelihoods, in bits per valid value; fine for *training*);
- `context`: the causal context network of errorbound(context="learned") (`satflow.train.context`),
  the transforms untouched.

Each epoch ends with validation on the val split: masked RMSE in physical units (the model in
coding mode: latents rounded) and bits per value from real range-coded containers of a few val
patches. Checkpoints (`satflow.codecs.learned.checkpoint`) go to OUT/last every epoch and to
OUT/<stage> when a stage completes; `resume=` continues a stage (same stage: optimizer, counters
and RNG restored) or starts a new one from its weights. Runs single-process or under `torchrun`
(DDP: gloo on CPU, NCCL on GPU); autocast (bf16/fp16) on GPU only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from satflow.lazy import lazy_getattr
from satflow.train.options import TrainConfig

if TYPE_CHECKING:
    from satflow.train.common import TrainResult

# Imported lazily: `satflow.config` imports `satflow.train.options`, and that must not pull in torch.
_EXPORTS = {"NonFiniteLossError": "satflow.train.common", "TrainResult": "satflow.train.common",
            "distortion_weights": "satflow.train.transform", "masked_mse": "satflow.train.transform"}

__all__ = ["NonFiniteLossError", "TrainResult", "distortion_weights", "masked_mse", "train"]

__getattr__ = lazy_getattr(__name__, _EXPORTS)


def train(store: str | Path, index: str | Path, out: str | Path, config: TrainConfig | None = None, *,
          resume: str | Path | None = None) -> TrainResult:
    """Train (or resume) one stage; returns the stage's final checkpoint OUT/<stage>."""
    config = config or TrainConfig()
    if config.stage == "context":
        from satflow.train.context import train_context

        return train_context(store, index, out, config, resume=resume)
    from satflow.train.transform import train_transform

    return train_transform(store, index, out, config, resume=resume)
