"""VAEformerLite checkpoints: a directory with weights, metadata and (optionally) training state.

    CKPT/weights.safetensors   model state dict, coding tables included (safetensors: no pickle)
    CKPT/meta.json             model config, features, store statistics, stage, epoch, history,
                               and the weights fingerprint
    CKPT/context.safetensors   (after `satflow train --stage context`) the causal context network
                               of errorbound(context="learned"); meta.json's "context" holds its
                               width and fingerprint
    CKPT/training_state.pt     optimizer state, epoch/step counters and RNG state; a plain
                               tensor/dict structure loaded with `torch.load(weights_only=True)`

`satflow train --out DIR` writes DIR/last (every epoch) and DIR/<stage> (end of each stage);
`resolve_checkpoint(DIR)` picks DIR itself if it is a checkpoint, else DIR/last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from satflow.codecs.learned.context import ContextNet
from satflow.codecs.learned.model import ModelConfig, VAEformerLite

WEIGHTS, META, STATE, CONTEXT = "weights.safetensors", "meta.json", "training_state.pt", "context.safetensors"
FORMAT = "satflow-vaeformer"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete or inconsistent; the message names the file."""


@dataclass
class CheckpointMeta:
    """Everything in meta.json besides the weights."""

    model: ModelConfig
    features: list[str]
    mean: list[float]
    std: list[float]
    stage: str = "pretrain"
    epoch: int = 0
    step: int = 0
    store: str = ""
    store_fingerprint: str = ""
    train: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    fingerprint: str = ""
    context: dict = field(default_factory=dict)  # {"hidden", "fingerprint"} of the context network

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "version": FORMAT_VERSION, "model": self.model.model_dump(),
            "features": list(self.features), "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std], "stage": self.stage, "epoch": self.epoch, "step": self.step,
            "store": self.store, "store_fingerprint": self.store_fingerprint, "train": self.train,
            "history": self.history, "fingerprint": self.fingerprint, "context": self.context,
        }

    @classmethod
    def from_json(cls, data: dict, origin: Path) -> CheckpointMeta:
        if data.get("format") != FORMAT:
            raise CheckpointError(f"{origin}: not a satflow VAEformer checkpoint (format {data.get('format')!r})")
        if int(data.get("version", 0)) > FORMAT_VERSION:
            raise CheckpointError(f"{origin}: checkpoint version {data['version']} is newer than this satflow; upgrade")
        try:
            return cls(
                model=ModelConfig.model_validate(data["model"]), features=list(data["features"]),
                mean=list(data["mean"]), std=list(data["std"]), stage=data.get("stage", "pretrain"),
                epoch=int(data.get("epoch", 0)), step=int(data.get("step", 0)), store=data.get("store", ""),
                store_fingerprint=data.get("store_fingerprint", ""), train=data.get("train", {}),
                history=list(data.get("history", [])), fingerprint=data.get("fingerprint", ""),
                context=dict(data.get("context", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{origin}: invalid checkpoint metadata ({err.__class__.__name__}: {err})") from err

    def normalization(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature float32 (mean, std) with safe fallbacks (std 1 where it is 0 or undefined)."""
        mean = np.nan_to_num(np.asarray(self.mean, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        std = np.asarray(self.std, dtype=np.float64)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class Checkpoint:
    path: Path
    model: VAEformerLite
    meta: CheckpointMeta
    context: ContextNet | None = None


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of every tensor (16 hex characters)."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from itself or from a training output directory (its `last`)."""
    path = Path(path)
    if (path / META).is_file():
        return path
    if (path / "last" / META).is_file():
        return path / "last"
    raise CheckpointError(
        f"{path}: no checkpoint here (expected {META} and {WEIGHTS}, or a 'last' sub-directory); "
        "train one with `satflow train`"
    )


def save_checkpoint(
    path: str | Path, model: VAEformerLite, meta: CheckpointMeta, training_state: dict[str, Any] | None = None,
    context: ContextNet | None = None,
) -> Path:
    """Write a checkpoint atomically (a temporary sibling directory renamed into place)."""
    path = Path(path)
    state = _cpu_state(_unwrap(model))
    meta.fingerprint = weights_fingerprint(state)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(state, str(tmp / WEIGHTS))
    if context is None:
        meta.context = {}
    else:
        context_state = _cpu_state(context)
        meta.context = {"hidden": context.hidden, "fingerprint": weights_fingerprint(context_state)}
        save_file(context_state, str(tmp / CONTEXT))
    (tmp / META).write_text(json.dumps(meta.to_json(), indent=1))
    if training_state is not None:
        torch.save(training_state, tmp / STATE)
    old = path.with_name(path.name + ".old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load weights and metadata; verifies that the weights match the recorded fingerprint."""
    path = resolve_checkpoint(path)
    try:
        meta = CheckpointMeta.from_json(json.loads((path / META).read_text()), path / META)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path / META}: not valid JSON ({err})") from err
    if not (path / WEIGHTS).is_file():
        raise CheckpointError(f"{path}: {WEIGHTS} is missing")
    state = load_file(str(path / WEIGHTS))
    model = VAEformerLite(meta.model)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path / WEIGHTS}: weights do not fit the model in {META} ({err})") from err
    actual = weights_fingerprint(model.state_dict())
    if meta.fingerprint and actual != meta.fingerprint:
        raise CheckpointError(
            f"{path}: weights fingerprint {actual} differs from {meta.fingerprint} recorded in {META} "
            "(files from different checkpoints?)"
        )
    meta.fingerprint = actual
    return Checkpoint(path=path, model=model.to(device), meta=meta, context=_load_context(path, meta))


def _load_context(path: Path, meta: CheckpointMeta) -> ContextNet | None:
    if not meta.context:
        return None
    if not (path / CONTEXT).is_file():
        raise CheckpointError(f"{path}: {META} names a context network but {CONTEXT} is missing")
    net = ContextNet(len(meta.features), int(meta.context.get("hidden", 0)))
    try:
        net.load_state_dict(load_file(str(path / CONTEXT)))
    except RuntimeError as err:
        raise CheckpointError(f"{path / CONTEXT}: weights do not fit the context network in {META} ({err})") from err
    if weights_fingerprint(_cpu_state(net)) != meta.context.get("fingerprint"):
        raise CheckpointError(f"{path / CONTEXT}: fingerprint differs from the one recorded in {META}")
    return net


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def load_training_state(path: str | Path) -> dict[str, Any]:
    """The optimizer/counters/RNG state saved with a checkpoint (weights_only=True: no pickle code)."""
    file = resolve_checkpoint(path) / STATE
    if not file.is_file():
        raise CheckpointError(f"{file}: missing; this checkpoint cannot resume training (it holds weights only)")
    return torch.load(file, map_location="cpu", weights_only=True)


def _unwrap(model: torch.nn.Module) -> VAEformerLite:
    return model.module if hasattr(model, "module") else model  # DDP wraps the model
