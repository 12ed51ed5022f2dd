"""`satflow index ...` end to end: build (default action), check-leaks, summary, derived indexes, export."""

from __future__ import annotations

import pytest

from satflow.cli import main
from satflow.cli.index import ACTIONS
from satflow.index.io import read_index, write_index


@pytest.fixture
def built(global_store, tmp_path, capsys):
    out = tmp_path / "index.parquet"
    code = main(["index", str(global_store.path), "--out", str(out), "--patch-size", "4", "--stride", "2",
                 "--max-nodata", "0.45", "--window-patches", "1", "--seed", "4", "--per-feature", "--check-leaks"])
    assert code == 0
    return out, capsys.readouterr().out


def test_default_action_builds_and_checks(built):
    out, printed = built
    frame = read_index(out)
    assert "valid_frac_tmbrs-15" in frame.columns
    assert (frame["valid_frac"] >= 0.55 - 1e-12).all()
    assert frame.attrs["satflow"]["parameters"]["split"]["seed"] == 4
    assert f"-> {out}" in printed and "leak check (space split): no leaks" in printed


def test_config_file_and_flags_combine(global_store, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("index:\n  patch_size: 6\n  stride: 6\n  split: {mode: time, time_block: 2}\n")
    out = tmp_path / "index.parquet"
    assert main(["index", "build", str(global_store.path), "--out", str(out), "--config", str(config),
                 "--stride", "3", "--time-start", "2020-01-01T06:00"]) == 0
    params = read_index(out).attrs["satflow"]["parameters"]
    assert (params["patch_size"], params["stride"], params["split"]["mode"]) == (6, 3, "time")
    assert read_index(out)["t"].min() == 1


def test_summary_and_leak_exit_codes(built, tmp_path, capsys):
    out, _ = built
    assert main(["index", "summary", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"patch index {out}" in printed and "fingerprint " in printed and " matches)" in printed
    frame = read_index(out)
    frame.loc[frame.index[::2], "split"] = "test"  # a random-row split: overlapping patches leak
    leaky = tmp_path / "leaky.parquet"
    write_index(frame, leaky, frame.attrs["satflow"])
    assert main(["index", "check-leaks", str(leaky)]) == 1
    assert "LEAKS FOUND" in capsys.readouterr().out


def test_derived_actions(built, tmp_path, capsys):
    out, _ = built
    strata, sample = tmp_path / "strata.parquet", tmp_path / "sample.parquet"
    assert main(["index", "stratify", str(out), "--out", str(strata), "--feature", "tmbrs-15", "--bins", "3"]) == 0
    assert main(["index", "sample", str(strata), "--out", str(sample), "--n", "2", "--balanced"]) == 0
    assert read_index(sample).groupby(["split", "stratum"]).size().max() == 2
    triplets, windows = tmp_path / "triplets.parquet", tmp_path / "windows.parquet"
    assert main(["index", "triplets", str(out), "--out", str(triplets), "--n-per-split", "3", "--seed", "1"]) == 0
    assert read_index(triplets).groupby("split").size().max() == 3
    assert main(["index", "windows", str(out), "--out", str(windows), "--length", "2", "--span", "3"]) == 0
    steps = [h["step"] for h in read_index(windows).attrs["satflow"]["history"]]
    assert steps == ["build", "windows"]
    export = tmp_path / "npz"
    assert main(["index", "export", str(sample), "--out", str(export), "--limit", "3", "--split", "train"]) == 0
    assert len(list(export.glob("*.npz"))) == 3
    printed = capsys.readouterr().out
    assert "rows per stratum 0:" in printed and "triplets" in printed


def test_missing_stratify_source_is_explained(built, tmp_path, capsys):
    out, _ = built
    assert main(["index", "stratify", str(out), "--out", str(tmp_path / "x.parquet")]) == 1
    assert "stratify needs --feature" in capsys.readouterr().err


@pytest.mark.parametrize("action", [[], *[[a] for a in ACTIONS]])
def test_every_action_has_help(action, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["index", *action, "--help"])
    assert exit_info.value.code == 0
    assert "usage: satflow index" in capsys.readouterr().out


def test_missing_index_file_is_explained(tmp_path, capsys):
    assert main(["index", "summary", str(tmp_path / "none.parquet")]) == 1
    assert "none.parquet: no such index; build one with `satflow index STORE" in capsys.readouterr().err
