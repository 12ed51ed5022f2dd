"""`satflow train`: stages, checkpoints, resume, validation, non-finite stop, CLI and DDP (gloo, CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from satflow.cli import main
from satflow.codecs.learned.checkpoint import load_checkpoint, load_training_state
from satflow.codecs.options import ArchitectureConfig
from satflow.codecs.registry import get_codec
from satflow.train import NonFiniteLossError, distortion_weights, masked_mse, train
from satflow.train.options import ContextTrainConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = ArchitectureConfig(dim=16, depth=2, heads=2, window=4, latent_channels=8, hyper_channels=4,
                                hyper_hidden=8, refine_channels=4)
FEATURES = ["tmbrs-1", "tmbrs-2"]


def tiny_config(**overrides) -> TrainConfig:
    settings = dict(epochs=2, batch_size=4, lr=3e-3, device="cpu", val_patches=2, model=TINY_MODEL)
    return TrainConfig(**{**settings, **overrides})


def write_fields(path: Path, values: np.ndarray) -> Path:
    from satflow.store import write_store_from_arrays

    n_time, _, n_lat, n_lon = values.shape
    return write_store_from_arrays(
        path, values, times=np.datetime64("2020-01-01") + np.arange(n_time) * np.timedelta64(6, "h"),
        features=FEATURES, lat=np.linspace(-80, 80, n_lat), lon=np.linspace(-177, 177, n_lon),
        chunks={"time": 1, "feature": -1, "lat": 32, "lon": 64},
    )


def smooth_fields(seed: int = 0) -> np.ndarray:
    """4 steps x 2 features x 32 x 64 smooth brightness temperatures with a moving swath gap."""
    rng = np.random.default_rng(seed)
    lat, lon = np.meshgrid(np.linspace(-1.4, 1.4, 32), np.linspace(0, 2 * np.pi, 64, endpoint=False), indexing="ij")
    values = np.empty((4, 2, 32, 64), np.float32)
    for t in range(4):
        for f in range(2):
            values[t, f] = 230 + 12 * f + 20 * np.cos(lat) + 4 * np.sin(2 * lon + t + f) + rng.normal(0, 0.3, lat.shape)
        gap = (np.arange(64)[None, :] + 2 * np.arange(32)[:, None] + 9 * t) % 40 < 8
        values[t][:, gap] = np.nan
    return values


def build_index(store: Path, out: Path) -> Path:
    from satflow.index.build import build_index as build
    from satflow.index.options import IndexConfig, SplitConfig

    config = IndexConfig(patch_size=16, stride=16, max_nodata_fraction=0.9,
                         split=SplitConfig(window_patches=1, train=0.5, val=0.25, test=0.25, seed=1))
    build(store, out, config)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    store = write_fields(root / "store.zarr", smooth_fields())
    return store, build_index(store, root / "index.parquet")


@pytest.fixture(scope="module")
def pretrained(data, tmp_path_factory):
    store, index = data
    out = tmp_path_factory.mktemp("run")
    return out, train(store, index, out, tiny_config(epochs=3))


def test_pretrain_reduces_loss_and_writes_checkpoints(pretrained, data):
    out, result = pretrained
    assert result.checkpoint == out / "pretrain"
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.history[-1]["train_mse"] < 0.7 * result.history[0]["train_mse"]
    for record in result.history:
        assert set(record["val_rmse_per_feature"]) == set(FEATURES)
        assert record["val_bits_per_value"] > 0 and np.isfinite(record["val_rmse_normalized"])
    checkpoint = load_checkpoint(out / "pretrain")
    assert checkpoint.meta.stage == "pretrain" and checkpoint.meta.epoch == 3 and checkpoint.meta.features == FEATURES
    store_stats = __import__("satflow.store", fromlist=["open_store"]).open_store(data[0])
    np.testing.assert_allclose(checkpoint.meta.mean, store_stats["mean"].values, rtol=1e-6)
    assert (out / "last" / "meta.json").is_file()


def test_trained_checkpoint_codes_store_blocks(pretrained, data):
    codec = get_codec("vaeformer", checkpoint=str(pretrained[0] / "pretrain"))
    block = smooth_fields()[0]
    x, mask = codec.decode(codec.encode(block))
    valid = np.isfinite(block)
    assert np.array_equal(mask.astype(bool), valid)
    assert float(np.sqrt(np.mean((x[valid] - block[valid]) ** 2))) < 10.0  # the fields span ~60 K


def test_resume_continues_exactly(data, tmp_path):
    store, index = data
    straight = train(store, index, tmp_path / "straight", tiny_config(epochs=2))
    train(store, index, tmp_path / "split", tiny_config(epochs=1))
    resumed = train(store, index, tmp_path / "split", tiny_config(epochs=2), resume=tmp_path / "split" / "last")
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    a = load_checkpoint(straight.checkpoint).model.state_dict()
    b = load_checkpoint(resumed.checkpoint).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # same weights as an uninterrupted run
    assert load_training_state(resumed.checkpoint)["optimizer"]["state"]


def test_cosine_schedule_decays_per_step_to_zero(data, tmp_path):
    store, index = data
    config = tiny_config(epochs=2, lr_schedule="cosine")
    result = train(store, index, tmp_path, config)
    steps = sum(record["steps"] for record in result.history)
    last_lr = load_training_state(result.checkpoint)["optimizer"]["param_groups"][0]["lr"]
    assert last_lr == pytest.approx(config.lr * 0.5 * (1 + np.cos(np.pi * (steps - 1) / steps)))
    assert load_checkpoint(result.checkpoint).meta.train["lr_schedule"] == "cosine"


def test_finetune_entropy_freezes_transforms(pretrained, data, tmp_path):
    store, index = data
    result = train(store, index, tmp_path, tiny_config(stage="finetune-entropy", epochs=1),
                   resume=pretrained[0] / "pretrain")
    before = load_checkpoint(pretrained[0] / "pretrain").model.state_dict()
    after = load_checkpoint(result.checkpoint).model.state_dict()
    for name in before:
        same = torch.equal(before[name], after[name])
        if name.startswith(("analysis.", "synthesis.")):
            assert same, name
    assert not torch.equal(before["hyper_synthesis.layers.4.weight"], after["hyper_synthesis.layers.4.weight"])
    assert load_checkpoint(result.checkpoint).meta.stage == "finetune-entropy"


def test_physical_distortion_is_the_mse_in_physical_units_rescaled():
    # Two features with spreads 30 K and 5 K, normalised errors 0.1 and 0.4: in kelvin 3 K and 2 K.
    std = np.array([30.0, 5.0])
    x = torch.zeros(1, 2, 2, 2)
    x_hat = torch.stack([torch.full((2, 2), 0.1), torch.full((2, 2), 0.4)])[None]
    mask = torch.ones_like(x)
    mask[0, 1, 0, 0] = 0  # an invalid point counts nowhere
    assert distortion_weights(std, "normalised") is None
    np.testing.assert_allclose(masked_mse(x_hat, x, mask), (4 * 0.01 + 3 * 0.16) / 7, rtol=1e-6)
    weights = distortion_weights(std, "physical")
    np.testing.assert_allclose(weights, [900 / 462.5, 25 / 462.5], rtol=1e-6)
    kelvin = (4 * 3.0**2 + 3 * 2.0**2) / 7
    np.testing.assert_allclose(masked_mse(x_hat, x, mask, weights), kelvin / 462.5, rtol=1e-6)
    with pytest.raises(ValueError, match="train.distortion must be 'normalised' or 'physical', got 'kelvin'"):
        distortion_weights(std, "kelvin")


def test_physical_distortion_trains_and_is_recorded(data, tmp_path):
    store, index = data
    result = train(store, index, tmp_path, tiny_config(epochs=1, distortion="physical"))
    assert load_checkpoint(result.checkpoint).meta.train["distortion"] == "physical"
    assert np.isfinite(result.history[0]["train_mse"])
    with pytest.raises(ValueError, match="distortion"):
        tiny_config(distortion="kelvin")


def test_non_finite_loss_stops_with_epoch_and_step(data, tmp_path):
    store, index = data
    # An absurd learning rate: the first update makes the weights ~1e30, the second forward overflows.
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) in stage pretrain, epoch 1, step 2 "):
        train(store, index, tmp_path, tiny_config(epochs=1, lr=1e30, grad_clip=0.0))
    assert not (tmp_path / "last").exists()


def context_config(epochs: int) -> TrainConfig:
    small = ContextTrainConfig(hidden=8, points=256, steps_per_batch=3)
    return tiny_config(stage="context", epochs=epochs, context=small)


@pytest.fixture(scope="module")
def with_context(pretrained, data, tmp_path_factory):
    store, index = data
    out = tmp_path_factory.mktemp("context")
    return out, train(store, index, out, context_config(2), resume=pretrained[1].checkpoint)


def test_context_stage_trains_the_network_and_leaves_the_transforms(with_context, pretrained, data):
    _, result = with_context
    checkpoint = load_checkpoint(result.checkpoint)
    assert result.checkpoint.name == "context" and checkpoint.context is not None
    assert checkpoint.meta.fingerprint == load_checkpoint(pretrained[1].checkpoint).meta.fingerprint
    epochs = [record for record in result.history if record["stage"] == "context"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert epochs[1]["val_l1"] < epochs[0]["val_l1"]
    assert set(epochs[1]["val_l1_per_feature"]) == set(FEATURES) and epochs[1]["val_bits_estimate"] > 0
    # the trained network codes the store's blocks within the bound
    from satflow.store import open_store

    ds = open_store(data[0])
    x, mask = ds["X"].values[0], ds["M"].values[0]
    codec = get_codec("errorbound", inner="constant", eps=0.3, context="learned", checkpoint=str(result.checkpoint))
    x_rec, _ = codec.decode(codec.encode(x, mask))
    assert np.abs(x_rec[mask != 0].astype(np.float64) - x[mask != 0]).max() <= 0.3


def test_learned_context_round_trips_from_the_cli(with_context, data, tmp_path, capsys):
    store, _ = data
    checkpoint = str(with_context[1].checkpoint)
    sfc = tmp_path / "t.sfc"
    assert main(["encode", str(store), "--codec", "errorbound", "--param", "inner=constant", "--param", "eps=0.25",
                 "--param", "context=learned", "--param", f"checkpoint={checkpoint}", "--time", "0:2",
                 "--out", str(sfc)]) == 0
    assert "context='learned'" in capsys.readouterr().out
    assert main(["decode", str(sfc), "--out", str(tmp_path / "t.npz")]) == 1
    assert "pass checkpoint=" in capsys.readouterr().err
    assert main(["decode", str(sfc), "--checkpoint", checkpoint, "--out", str(tmp_path / "t.npz")]) == 0
    decoded = np.load(tmp_path / "t.npz")
    original = smooth_fields()[:2]
    assert np.nanmax(np.abs(decoded["X"].astype(np.float64) - original)) <= 0.25


def test_context_stage_resumes_and_later_stages_keep_the_network(with_context, data):
    store, index = data
    out, first = with_context
    resumed = train(store, index, out, context_config(3), resume=out / "last")
    assert [r["epoch"] for r in resumed.history if r["stage"] == "context"] == [1, 2, 3]
    fingerprint = load_checkpoint(resumed.checkpoint).meta.context["fingerprint"]
    finetuned = train(store, index, out, tiny_config(stage="finetune-entropy", epochs=1), resume=resumed.checkpoint)
    assert load_checkpoint(finetuned.checkpoint).meta.context["fingerprint"] == fingerprint


def test_cli_train_and_help(data, tmp_path, capsys):
    store, index = data
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "finetune-entropy" in capsys.readouterr().out
    code = main(["train", str(store), "--index", str(index), "--out", str(tmp_path / "ctx"), "--stage", "context",
                 "--epochs", "1", "--max-steps", "1", "--batch-size", "2", "--device", "cpu",
                 "--set", "train.context.hidden=4", "--set", "train.context.points=64"])
    assert code == 0 and f"checkpoint: {tmp_path / 'ctx' / 'context'}" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "ctx" / "context").meta.context["hidden"] == 4
    code = main(["train", str(store), "--index", str(index), "--out", str(tmp_path), "--epochs", "1",
                 "--max-steps", "2", "--batch-size", "2", "--device", "cpu", "--set", "train.model.dim=16", "--set", "train.model.heads=2",
                 "--set", "train.model.depth=1"])
    assert code == 0 and f"checkpoint: {tmp_path / 'pretrain'}" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "pretrain").meta.history[0]["steps"] == 2


def test_cli_rejects_bad_flags(data, tmp_path, capsys):
    store, index = data
    assert main(["train", str(store), "--index", str(index), "--out", str(tmp_path), "--epochs", "0"]) == 1
    assert "epochs" in capsys.readouterr().err


def test_ddp_two_cpu_processes(data, tmp_path):
    store, index = data
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "jobs" / "train_ddp.py"), str(store), "--index", str(index), "--out", str(tmp_path),
               "--epochs", "1", "--device", "cpu", "--set", "train.model.dim=16", "--set", "train.model.heads=2",
               "--set", "train.model.depth=1", "--batch-size", "2"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = load_checkpoint(tmp_path / "pretrain")
    # 16 train patches over 2 ranks of batch 2: 4 steps per rank per epoch.
    assert checkpoint.meta.history[0]["steps"] == 4 and checkpoint.meta.epoch == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_mixed_precision_training(data, tmp_path):
    store, index = data
    result = train(store, index, tmp_path, tiny_config(epochs=1, device="cuda", amp="bf16"))
    assert np.isfinite(result.history[0]["train_loss"])
    codec = get_codec("vaeformer", checkpoint=str(result.checkpoint), device="cuda")
    x, _ = codec.decode(codec.encode(smooth_fields()[0]))
    assert x.shape == (2, 32, 64)
