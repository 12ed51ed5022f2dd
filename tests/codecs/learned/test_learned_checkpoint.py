"""Checkpoints: safetensors + JSON, fingerprints, weights-only training state, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from satflow.codecs.learned.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_training_state,
    resolve_checkpoint,
    weights_fingerprint,
)

FEATURES = ["tmbrs-1", "tmbrs-2"]  # as in conftest.make_checkpoint


def test_save_load_round_trip(checkpoint):
    loaded = load_checkpoint(checkpoint)
    assert loaded.path == checkpoint
    assert loaded.meta.features == FEATURES and loaded.meta.mean == [230.0, 245.0]
    assert loaded.meta.fingerprint == weights_fingerprint(loaded.model.state_dict())
    stored = load_file(str(checkpoint / "weights.safetensors"))
    assert set(stored) == set(loaded.model.state_dict())
    assert stored["gaussian.table_counts"].shape == (64, loaded.model.gaussian.table_lengths.max())
    meta = json.loads((checkpoint / "meta.json").read_text())
    assert meta["format"] == "satflow-vaeformer" and meta["model"]["n_features"] == 2


def test_same_seed_same_fingerprint(tmp_path, checkpoint_factory):
    first = load_checkpoint(checkpoint_factory(tmp_path / "x", seed=3)).meta.fingerprint
    second = load_checkpoint(checkpoint_factory(tmp_path / "y", seed=3)).meta.fingerprint
    third = load_checkpoint(checkpoint_factory(tmp_path / "z", seed=4)).meta.fingerprint
    assert first == second != third and len(first) == 16


def test_training_state_loads_weights_only(checkpoint):
    state = load_training_state(checkpoint)
    assert set(state) == {"optimizer", "torch_rng"} and state["torch_rng"].dtype == torch.uint8


def test_output_directory_resolves_to_last(tmp_path, checkpoint_factory):
    checkpoint_factory(tmp_path / "run" / "last")
    assert resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "last"


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint here .*meta.json.*satflow train"):
        load_checkpoint(tmp_path)


def test_tampered_weights_are_detected(tmp_path, checkpoint_factory):
    path = checkpoint_factory(tmp_path / "t")
    weights = load_file(str(path / "weights.safetensors"))
    weights["synthesis.head.bias"] = weights["synthesis.head.bias"] + 1.0
    save_file(weights, str(path / "weights.safetensors"))
    with pytest.raises(CheckpointError, match="weights fingerprint .* differs from .* recorded in meta.json"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_config(tmp_path, checkpoint_factory):
    path = checkpoint_factory(tmp_path / "w")
    meta = json.loads((path / "meta.json").read_text())
    meta["model"]["dim"] = 32
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights do not fit the model in meta.json"):
        load_checkpoint(path)


def test_not_a_satflow_checkpoint(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="not a satflow VAEformer checkpoint"):
        load_checkpoint(tmp_path)


def test_weights_only_checkpoint_cannot_resume(tmp_path, checkpoint_factory):
    path = checkpoint_factory(tmp_path / "n")
    (path / "training_state.pt").unlink()
    with pytest.raises(CheckpointError, match="cannot resume training"):
        load_training_state(path)
