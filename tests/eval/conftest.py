"""Fixtures of the eval tests: a small gappy store (edge blocks, an all-invalid block, an empty
feature at one step) and a tiny learned checkpoint for its two features."""

from __future__ import annotations

import numpy as np
import pytest

FEATURES = ["tmbrs-1", "tmbrs-2"]


def gappy_values(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:24, 0:40]
    smooth = 240.0 + 10.0 * np.sin(y / 5.0) + 5.0 * np.cos(x / 7.0)
    values = np.stack([[smooth + f * 3.0 + rng.normal(0.0, 1.5, smooth.shape) for f in range(2)]
                       for _ in range(3)]).astype(np.float32)
    values[rng.random(values.shape) < 0.2] = np.nan  # scattered gaps
    values[:, :, 0:8, 32:40] = np.nan  # a whole chunk-sized block without any valid point
    values[1, 1] = np.nan  # a feature without valid points at one time step
    return values


@pytest.fixture(scope="module")
def eval_store(tmp_path_factory):
    """A 3 x 2 x 24 x 40 store chunked 8 x 16 (so the last column of blocks is 8 wide)."""
    from satflow.store import write_store_from_arrays

    values = gappy_values()
    path = tmp_path_factory.mktemp("eval") / "cube.zarr"
    write_store_from_arrays(
        path, values, times=np.datetime64("2021-03-01") + np.arange(3) * np.timedelta64(6, "h"),
        features=FEATURES, lat=np.linspace(-11.5, 11.5, 24), lon=np.linspace(0.5, 39.5, 40),
        chunks={"time": 1, "feature": -1, "lat": 8, "lon": 16}, units=["K", "K"],
    )
    return path, values


@pytest.fixture(scope="session")
def learned_checkpoint(tmp_path_factory):
    """A seeded, untrained tiny VAEformerLite for FEATURES (streams decode exactly whatever the weights)."""
    import torch

    from satflow.codecs.learned.checkpoint import CheckpointMeta, save_checkpoint
    from satflow.codecs.learned.model import ModelConfig, VAEformerLite

    torch.manual_seed(0)
    config = ModelConfig(n_features=len(FEATURES), dim=16, depth=1, heads=2, window=4, latent_channels=8,
                         hyper_channels=4, hyper_hidden=8, refine_channels=4)
    model = VAEformerLite(config)
    model.update()
    meta = CheckpointMeta(model=config, features=FEATURES, mean=[240.0, 243.0], std=[8.0, 8.0])
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model, meta, {"optimizer": {}})
