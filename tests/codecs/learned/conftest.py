"""Fixtures for the learned-codec tests: tiny seeded VAEformerLite checkpoints (no training needed:
a stream must decode exactly whatever the weights are)."""

from __future__ import annotations

import pytest
import torch

from satflow.codecs.learned.checkpoint import CheckpointMeta, save_checkpoint
from satflow.codecs.learned.context import ContextNet
from satflow.codecs.learned.model import ModelConfig, VAEformerLite

FEATURES = ["tmbrs-1", "tmbrs-2"]
TINY = dict(dim=16, depth=2, heads=2, window=4, latent_channels=8, hyper_channels=4, hyper_hidden=8,
            refine_channels=4)


def make_checkpoint(path, seed: int = 0, context_hidden: int | None = None, **overrides):
    """Save a seeded, untrained tiny model (coding tables built) and return its directory; with
    `context_hidden`, also a seeded untrained context network of that width."""
    torch.manual_seed(seed)
    config = ModelConfig(n_features=len(FEATURES), **{**TINY, **overrides})
    model = VAEformerLite(config)
    model.update()
    context = None
    if context_hidden:
        context = ContextNet(len(FEATURES), context_hidden)
        with torch.no_grad():  # a skip that mostly copies the point above: predictions in range
            context.skip.uniform_(-0.1, 0.1)
            context.skip[:, -8] += 0.9
    meta = CheckpointMeta(model=config, features=FEATURES, mean=[230.0, 245.0], std=[8.0, 9.0])
    return save_checkpoint(path, model, meta, {"optimizer": {}, "torch_rng": torch.get_rng_state()}, context=context)


@pytest.fixture(scope="session")
def checkpoint_factory():
    """`make_checkpoint(path, seed=0, **architecture)` for tests that need their own checkpoint."""
    return make_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "a", seed=0)


@pytest.fixture(scope="session")
def other_checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "b", seed=1)


@pytest.fixture(scope="session")
def context_checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "context", seed=2, context_hidden=8)
