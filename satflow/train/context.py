"""`satflow train --stage context`: the causal context network of errorbound(context="learned").

Each step draws random points of every feature from a batch of train-split patches, disturbs
their inputs by +-eps (eps log-uniform over `train.context.noise`, in standard deviations) and
minimises the mean absolute prediction error in normalised units: a Laplace-like residual costs
bits in proportion to log |error|, which L1 tracks more closely than squared error. The learning
rate decays from `train.lr` to 0 over the stage's epochs (cosine): the last steps refine. No rot90 or
flip augmentation: "rows above" must stay the rows above. Validation on the val split reports
the error per feature and an estimate of the bits per valid value at `train.context.reference_eps`
(the empirical entropy of the residual quantised with step 2 eps). One process: the network is
small, and DDP would buy nothing on it.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from satflow.codecs.learned.checkpoint import save_checkpoint
from satflow.codecs.learned.context import ContextNet, sample_points
from satflow.train.common import (
    NonFiniteLossError,
    PatchTensors,
    TrainResult,
    batch_loader,
    initial_state,
    open_split,
    setup_runtime,
)
from satflow.train.options import TrainConfig

log = logging.getLogger("satflow.train")


def train_context(store: str | Path, index: str | Path, out: str | Path, config: TrainConfig, *,
                  resume: str | Path | None = None) -> TrainResult:
    runtime = setup_runtime(config.device)
    if runtime.world > 1:
        raise ValueError("stage context trains in one process (a small network): run it without torchrun")
    out = Path(out)
    train_set = open_split(store, index, "train", None)
    val_set = PatchTensors(open_split(store, index, "val", train_set.features), cache=config.cache)
    start = initial_state(store, train_set, config, resume)
    meta = start.meta
    meta.train = config.model_dump(mode="json")
    resuming = start.optimizer_state is not None and start.context is not None
    if not resuming:
        torch.manual_seed(config.seed)
    net = (start.context if resuming else ContextNet(len(meta.features), config.context.hidden)).to(runtime.device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if resuming:
        optimizer.load_state_dict(start.optimizer_state)
        if start.rng_state is not None:
            torch.set_rng_state(start.rng_state)
    dataset = PatchTensors(train_set, cache=config.cache)
    for epoch in range(meta.epoch, config.epochs):
        started = time.perf_counter()
        record, meta.step = _train_epoch(net, optimizer, dataset, config, runtime, epoch, meta.step)
        meta.epoch = epoch + 1
        record.update(validate_context(net, val_set, meta.features, config, runtime.device))
        record.update(stage=config.stage, epoch=meta.epoch, seconds=round(time.perf_counter() - started, 2))
        meta.history.append(record)
        log.info("context epoch %d/%d: L1 %.4f std | val L1 %.4f std, ~%.3f bits/valid value at eps = %g std | %.1f s",
                 meta.epoch, config.epochs, record["train_l1"], record["val_l1"], record["val_bits_estimate"],
                 config.context.reference_eps, record["seconds"])
        _save(out / "last", start.model, meta, optimizer, net.cpu())
        net.to(runtime.device)
    _save(out / config.stage, start.model, meta, optimizer, net.cpu())
    return TrainResult(out / config.stage, meta.history)


def _save(path: Path, model, meta, optimizer, net: ContextNet) -> None:
    save_checkpoint(path, model, meta, {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
                    context=net)


def _train_epoch(net, optimizer, dataset, config: TrainConfig, runtime, epoch: int, step: int) -> tuple[dict, int]:
    generator = torch.Generator().manual_seed(config.seed * 7919 + epoch)
    loader = batch_loader(dataset, config, runtime, epoch)
    batches = min(config.max_steps_per_epoch or len(loader), len(loader))
    total_steps = config.epochs * batches * config.context.steps_per_batch
    total, n = 0.0, 0
    net.train()
    for batch, (x, mask) in enumerate(loader):
        if batch >= batches:
            break
        for _ in range(config.context.steps_per_batch):
            for group in optimizer.param_groups:  # cosine decay over the stage: the last steps refine
                progress = min((epoch * batches * config.context.steps_per_batch + n) / total_steps, 1.0)
                group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
            inputs, targets, weights = sample_points(x, mask, config.context.points, config.context.noise, generator)
            loss = _l1(net(inputs.to(runtime.device)), targets.to(runtime.device), weights.to(runtime.device))
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite loss ({loss.item()}) in stage context, epoch {epoch + 1}, step {n + 1} "
                    f"(global step {step + 1}); check the store for absurd values or lower train.lr ({config.lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
            total, n, step = total + loss.item(), n + 1, step + 1
    if n == 0:
        raise ValueError("the train split yielded no batch; lower train.batch_size or index more patches")
    return {"train_l1": total / n, "steps": n}, step


def _l1(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((prediction - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


@torch.no_grad()
def validate_context(net: ContextNet, val_set, features: list[str], config: TrainConfig, device) -> dict:
    """Per-feature mean absolute error (std units) and the bits per valid value it implies at the
    reference eps, on fixed random points of the val split."""
    net.eval()
    eps = config.context.reference_eps
    generator = torch.Generator().manual_seed(config.seed)
    errors = [[] for _ in features]
    loader = torch.utils.data.DataLoader(val_set, batch_size=config.batch_size, shuffle=False)
    for x, mask in loader:
        inputs, targets, weights = sample_points(x, mask, config.context.points, (eps, eps), generator)
        miss = (net(inputs.to(device)).cpu() - targets)
        for f in range(len(features)):
            errors[f].append(miss[f][weights[f] > 0].numpy())
    net.train()
    per_feature = [np.concatenate(e) if e else np.zeros(0) for e in errors]
    l1 = {name: float(np.abs(e).mean()) if e.size else float("nan") for name, e in zip(features, per_feature)}
    bits = [_entropy(np.rint(e / (2 * eps))) for e in per_feature if e.size]
    return {"val_l1": float(np.nanmean(list(l1.values()))), "val_l1_per_feature": l1,
            "val_bits_estimate": float(np.mean(bits)) if bits else float("nan")}


def _entropy(symbols: np.ndarray) -> float:
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())
