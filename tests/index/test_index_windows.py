"""Time windows: k consecutive steps, and the best k of n by valid fraction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from satflow.index.windows import time_windows


def frame_of(valid: dict[str, list[float | None]], split: str = "train") -> pd.DataFrame:
    """One location per key, valid_frac per time step (None = row absent from the index)."""
    rows = []
    for x0, (name, fracs) in enumerate(valid.items()):
        for t, frac in enumerate(fracs):
            if frac is not None:
                rows.append({"patch_id": name, "t": t, "y0": 0, "x0": x0, "height": 1, "width": 1,
                             "valid_frac": frac, "split": split})
    return pd.DataFrame(rows)


def test_contiguous_windows_need_every_step():
    frame = frame_of({"a": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], "b": [0.9, None, 0.7, 0.6, 0.5, 0.4]})
    result = time_windows(frame, length=2)
    assert result.groupby("sequence_id")["t"].apply(list).to_dict() == {
        "a@t0": [0, 1], "a@t2": [2, 3], "a@t4": [4, 5], "b@t2": [2, 3], "b@t4": [4, 5]}
    assert result["sequence_pos"].tolist() == [0, 1] * 5
    np.testing.assert_allclose(result.groupby("sequence_id")["sequence_valid_frac"].first()["a@t2"], 0.65)
    sliding = time_windows(frame, length=3, step=1)
    assert sliding["sequence_id"].nunique() == 4 + 2  # a: starts 0..3; b: starts 2, 3


def test_best_k_of_n_picks_the_most_valid_steps_in_time_order():
    frame = frame_of({"a": [0.1, 0.9, 0.5, 0.9, 0.2, 0.7, 0.3, 0.8],
                      "b": [0.5, None, None, 0.6, 0.9, 0.9, 0.9, 0.9]})
    result = time_windows(frame, length=2, span=4)
    members = result.groupby("sequence_id")["t"].apply(list).to_dict()
    assert members == {"a@t0": [1, 3], "a@t4": [5, 7], "b@t0": [0, 3], "b@t4": [4, 5]}  # ties: earlier first
    strict = time_windows(frame, length=2, span=4, min_valid_frac=0.55)
    assert "b@t0" not in set(strict["sequence_id"])  # only one member reaches 0.55


def test_sequences_never_mix_splits():
    frame = frame_of({"a": [0.9] * 4})
    frame.loc[frame.t >= 2, "split"] = "val"
    assert time_windows(frame, length=2)["sequence_id"].tolist() == ["a@t0", "a@t0", "a@t2", "a@t2"]
    assert time_windows(frame, length=2, step=1)["sequence_id"].nunique() == 2  # a@t1 would straddle


def test_invalid_lengths_are_rejected():
    with pytest.raises(ValueError, match="need 0 < length <= span"):
        time_windows(frame_of({"a": [1.0]}), length=3, span=2)
