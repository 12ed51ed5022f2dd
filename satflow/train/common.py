"""What the training stages share: data splits, the (DDP) runtime, starting or resuming a stage."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from satflow.codecs.learned.checkpoint import CheckpointMeta, load_checkpoint, load_training_state
from satflow.codecs.learned.context import ContextNet
from satflow.codecs.learned.model import ModelConfig, VAEformerLite
from satflow.train.options import TrainConfig

log = logging.getLogger("satflow.train")


class NonFiniteLossError(ValueError):
    """Training produced a NaN/inf loss; the message names the stage, epoch and step."""


@dataclass
class TrainResult:
    checkpoint: Path  # OUT/<stage>
    history: list[dict] = field(default_factory=list)


# --- data ----------------------------------------------------------------------------------------


class PatchTensors(Dataset):
    """(x, mask) float32 tensors of a PatchDataset, optionally cached in memory."""

    def __init__(self, patches, cache: bool) -> None:
        self.patches, self.cache = patches, {} if cache else None

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cache is not None and i in self.cache:
            return self.cache[i]
        item = self.patches[i]
        pair = (item["x"].float(), item["mask"].float())
        if self.cache is not None:
            self.cache[i] = pair
        return pair


def open_split(store: str | Path, index: str | Path, split: str, features: list[str] | None):
    """The PatchDataset of one split (normalised with the store statistics, invalid = 0)."""
    from satflow.dataset import PatchDataset

    return PatchDataset(store, index, split=split, features=features, normalize=True, augment=False)


def augment_batch(x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random rot90 / left-right flip for the whole batch (patches are square)."""
    turns, flip = (int(v) for v in torch.randint(0, 4, (2,), generator=generator))
    if x.shape[-1] == x.shape[-2] and turns:
        x, mask = torch.rot90(x, turns, (-2, -1)), torch.rot90(mask, turns, (-2, -1))
    if flip % 2:
        x, mask = x.flip(-1), mask.flip(-1)
    return x, mask


# --- distributed ---------------------------------------------------------------------------------


@dataclass
class Runtime:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_runtime(device: str) -> Runtime:
    """Single process, or DDP when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={device!r} but torch sees no CUDA device; use --device cpu")
    if world == 1:
        return Runtime(0, 1, resolved)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    return Runtime(dist.get_rank(), dist.get_world_size(), resolved)


def any_rank(flag: bool, runtime: Runtime) -> bool:
    if runtime.world == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=runtime.device)
    dist.all_reduce(value)
    return bool(value.item() > 0)


def barrier(runtime: Runtime) -> None:
    if runtime.world > 1:
        dist.barrier()


# --- starting or resuming a stage -----------------------------------------------------------------


@dataclass
class Start:
    model: VAEformerLite
    meta: CheckpointMeta
    optimizer_state: dict | None = None
    rng_state: torch.Tensor | None = None
    context: ContextNet | None = None  # carried through the transform stages, trained by stage context


def initial_state(store, train_set, config: TrainConfig, resume: str | Path | None) -> Start:
    features = [str(f) for f in train_set.features]
    if resume is None:
        torch.manual_seed(config.seed)
        model_config = ModelConfig(n_features=len(features), **config.model.model_dump())
        meta = CheckpointMeta(model=model_config, features=features, mean=train_set.mean.tolist(),
                              std=train_set.std.tolist(), stage=config.stage, store=str(store),
                              store_fingerprint=_store_fingerprint(store))
        return Start(VAEformerLite(model_config), meta)
    checkpoint = load_checkpoint(resume)
    meta = checkpoint.meta
    if meta.features != features:
        raise ValueError(f"{checkpoint.path}: trained on features {meta.features}, the store has {features}")
    if meta.stage != config.stage:  # a new stage from the previous one's weights
        log.info("starting stage %s from the %s weights of %s", config.stage, meta.stage, checkpoint.path)
        meta.stage, meta.epoch = config.stage, 0
        return Start(checkpoint.model, meta, context=checkpoint.context)
    state = load_training_state(checkpoint.path)
    log.info("resuming stage %s of %s after epoch %d", meta.stage, checkpoint.path, meta.epoch)
    return Start(checkpoint.model, meta, state["optimizer"], state.get("torch_rng"), checkpoint.context)


def _store_fingerprint(store) -> str:
    from satflow.store import StoreError, fingerprint

    try:
        return fingerprint(store)
    except StoreError:
        return ""


def batch_loader(dataset: Dataset, config: TrainConfig, runtime: Runtime, epoch: int) -> DataLoader:
    if runtime.world > 1:
        sampler = DistributedSampler(dataset, runtime.world, runtime.rank, shuffle=True, seed=config.seed)
        sampler.set_epoch(epoch)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(config.seed * 1000 + epoch))
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers,
                      drop_last=len(dataset) >= config.batch_size * runtime.world)
