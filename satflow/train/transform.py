"""Stages pretrain and finetune-entropy: the transforms, hyperprior and entropy models of VAEformerLite."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from satflow.codecs.learned.checkpoint import CheckpointMeta, save_checkpoint
from satflow.codecs.learned.model import VAEformerLite
from satflow.train.common import (
    NonFiniteLossError,
    PatchTensors,
    Runtime,
    TrainResult,
    any_rank,
    augment_batch,
    barrier,
    batch_loader,
    initial_state,
    open_split,
    setup_runtime,
)
from satflow.train.options import TrainConfig

log = logging.getLogger("satflow.train")


# --- losses --------------------------------------------------------------------------------------


def masked_mse(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over valid points (normalised units), each feature's squared error times
    `weights[feature]` when given."""
    squared = (x_hat.float() - x) ** 2 * mask
    if weights is not None:
        squared = squared * weights.to(squared.device, squared.dtype)[None, :, None, None]
    return squared.sum() / mask.sum().clamp_min(1.0)


def distortion_weights(std: np.ndarray, distortion: str) -> torch.Tensor | None:
    """Per-feature weights of the squared error for `train.distortion` (None: plain normalised MSE).

    `physical`: std**2 / mean(std**2), so that D is the masked MSE in physical units divided by the
    mean variance: a feature with a 37 K spread weighs 56 times one with a 5 K spread, as in an RMSE
    pooled in kelvin, while D keeps the scale of the normalised MSE (lmbda keeps its meaning).
    """
    if distortion == "normalised":
        return None
    if distortion != "physical":
        raise ValueError(f"train.distortion must be 'normalised' or 'physical', got {distortion!r}")
    variance = np.asarray(std, dtype=np.float64) ** 2
    return torch.from_numpy(variance / variance.mean()).float()


def rate_bits(output, mask: torch.Tensor) -> torch.Tensor:
    """Estimated bits (y and z) per valid value, from the likelihoods."""
    bits = -(torch.log2(output.y_likelihood).sum() + torch.log2(output.z_likelihood).sum())
    return bits / mask.sum().clamp_min(1.0)


def stage_loss(output, x, mask, config: TrainConfig,
               weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, D, R) for the configured stage; `weights` from `distortion_weights`."""
    distortion, rate = masked_mse(output.x_hat, x, mask, weights), rate_bits(output, mask)
    if config.stage == "pretrain" and not config.pretrain_rate:
        return distortion, distortion, rate
    return config.lmbda * distortion + rate, distortion, rate


# --- mixed precision -----------------------------------------------------------------------------


def trainable_parameters(model: VAEformerLite, stage: str) -> list[torch.nn.Parameter]:
    """Freeze the transforms in `finetune-entropy`; return the parameters to optimise."""
    entropy = {id(p) for p in model.entropy_parameters()}
    for parameter in model.parameters():
        parameter.requires_grad_(stage == "pretrain" or id(parameter) in entropy)
    return [p for p in model.parameters() if p.requires_grad]


def _autocast(runtime: Runtime, config: TrainConfig):
    if runtime.device.type != "cuda" or config.amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if config.amp == "bf16" else torch.float16)


# --- validation ----------------------------------------------------------------------------------


@torch.no_grad()
def validate(model: VAEformerLite, val_set: Dataset, meta: CheckpointMeta, config: TrainConfig,
             device: torch.device) -> dict[str, Any]:
    """Masked RMSE per feature (physical units) and pooled (z-score units) over the val split, and
    real bits per value on a few patches."""
    from satflow.codecs.container import pack_container
    from satflow.codecs.learned.coding import LatentCoder

    model.eval()
    _, std = meta.normalization()
    squared, counts = np.zeros(len(std)), np.zeros(len(std))
    loader = DataLoader(val_set, batch_size=config.batch_size, shuffle=False)
    for x, mask in loader:
        x, mask = x.to(device), mask.to(device)
        error = (model(x, mask).x_hat.float() - x) * mask
        squared += (error**2).sum(dim=(0, 2, 3)).double().cpu().numpy()
        counts += mask.sum(dim=(0, 2, 3)).double().cpu().numpy()
    per_feature = np.sqrt(squared / np.maximum(counts, 1)) * std
    # Pooled over features only in normalised (z-score) units: kelvin and metres do not add up.
    pooled = math.sqrt(float(squared.sum() / max(counts.sum(), 1)))
    result = {"val_rmse_normalized": pooled, "val_rmse_per_feature": dict(zip(meta.features, per_feature.tolist()))}
    n_code = min(config.val_patches, len(val_set))
    if n_code:
        model.update()
        coder = LatentCoder(model, device)
        x, mask = (torch.stack(t) for t in zip(*(val_set[i] for i in range(n_code))))
        payloads = coder.compress(x, mask)
        sizes = [len(pack_container("vaeformer", {"fingerprint": "0" * 16, "n_features": x.shape[1], "qstep": 1.0},
                                    m.numpy().astype(np.uint8), p)) for m, p in zip(mask, payloads)]
        result["val_bits_per_value"] = 8.0 * sum(sizes) / x.numel()
        result["val_bits_per_valid_value"] = 8.0 * sum(sizes) / max(float(mask.sum()), 1.0)
    model.train()
    return result


# --- the loop ------------------------------------------------------------------------------------


def _train_epoch(net, model, optimizer, scaler, dataset, config, runtime, epoch: int, step: int,
                 weights: torch.Tensor | None = None) -> tuple[dict, int]:
    loader = batch_loader(dataset, config, runtime, epoch)
    generator = torch.Generator().manual_seed(config.seed * 7919 + epoch * 104729 + runtime.rank)
    limit = min(config.max_steps_per_epoch or len(loader), len(loader))
    totals = np.zeros(3)
    n = 0
    net.train()
    for x, mask in loader:
        if n >= limit:
            break
        if config.augment:
            x, mask = augment_batch(x, mask, generator)
        x, mask = x.to(runtime.device), mask.to(runtime.device)
        with _autocast(runtime, config):
            output = net(x, mask)
        loss, distortion, rate = stage_loss(output, x, mask, config, weights)
        if any_rank(not bool(torch.isfinite(loss)), runtime):
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) in stage {config.stage}, epoch {epoch + 1}, step {n + 1} "
                f"(global step {step + 1}); check the store for absurd values or lower train.lr ({config.lr})"
            )
        _schedule_lr(optimizer, config, (epoch * limit + n) / (config.epochs * limit))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        totals += (loss.item(), distortion.item(), rate.item())
        n, step = n + 1, step + 1
        if runtime.main and step % config.log_every == 0:
            log.info("step %d: loss %.4f (D %.5f, R %.3f bits/value)", step, *(totals / n))
    if n == 0:
        raise ValueError("the train split yielded no batch; lower train.batch_size or index more patches")
    loss, distortion, rate = totals / n
    return {"train_loss": loss, "train_mse": distortion, "train_bits_estimate": rate, "steps": n}, step


def _schedule_lr(optimizer: torch.optim.Optimizer, config: TrainConfig, progress: float) -> None:
    """Cosine decay to 0 over the stage's epochs (progress in [0, 1]): the last steps refine the
    transforms at a small step, which a constant rate never does."""
    if config.lr_schedule == "cosine":
        for group in optimizer.param_groups:
            group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def train_transform(store: str | Path, index: str | Path, out: str | Path, config: TrainConfig, *,
                    resume: str | Path | None = None) -> TrainResult:
    """Train (or resume) stage pretrain or finetune-entropy; returns its final checkpoint OUT/<stage>."""
    runtime = setup_runtime(config.device)
    out = Path(out)
    train_set = open_split(store, index, "train", None)
    val_set = PatchTensors(open_split(store, index, "val", train_set.features), cache=config.cache)
    start = initial_state(store, train_set, config, resume)
    model, meta = start.model.to(runtime.device), start.meta
    meta.train = config.model_dump(mode="json")
    optimizer = torch.optim.AdamW(trainable_parameters(model, config.stage), lr=config.lr,
                                  weight_decay=config.weight_decay)
    if start.optimizer_state is not None:
        optimizer.load_state_dict(start.optimizer_state)
    if start.rng_state is not None:
        torch.set_rng_state(start.rng_state)
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.device.type == "cuda" and config.amp == "fp16")
    net = model
    if runtime.world > 1:
        # Coding tables change shape at validation (rank 0 only): never broadcast buffers.
        net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    dataset = PatchTensors(train_set, cache=config.cache)
    if meta.epoch >= config.epochs:
        log.info("stage %s already has %d epochs (train.epochs = %d): nothing to do", config.stage, meta.epoch,
                 config.epochs)
    weights = distortion_weights(meta.normalization()[1], config.distortion)
    for epoch in range(meta.epoch, config.epochs):
        started = time.perf_counter()
        record, meta.step = _train_epoch(net, model, optimizer, scaler, dataset, config, runtime, epoch, meta.step,
                                         weights)
        meta.epoch = epoch + 1
        if runtime.main:
            record.update(validate(model, val_set, meta, config, runtime.device))
            record.update(stage=config.stage, epoch=meta.epoch, seconds=round(time.perf_counter() - started, 2))
            meta.history.append(record)
            _log_epoch(record, config)
            model.update()
            state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
            save_checkpoint(out / "last", model, meta, state, context=start.context)
        barrier(runtime)
    if runtime.main:
        model.update()
        save_checkpoint(out / config.stage, model, meta,
                        {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}, context=start.context)
    barrier(runtime)
    return TrainResult(out / config.stage, meta.history)


def _log_epoch(record: dict, config: TrainConfig) -> None:
    bits = record.get("val_bits_per_value")
    log.info(
        "%s epoch %d/%d: loss %.4f (MSE %.5f, R %.3f est. bits/value) | val RMSE %.4f std%s | %.1f s",
        record["stage"], record["epoch"], config.epochs, record["train_loss"], record["train_mse"],
        record["train_bits_estimate"], record["val_rmse_normalized"],
        f", {bits:.3f} bits/value (real streams)" if bits is not None else "", record["seconds"],
    )
