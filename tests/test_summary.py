"""`satflow inspect`: summary values against numpy on the data the store was built from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from satflow.cli import main as cli_main
from satflow.store import StoreError, fingerprint, open_group, write_store_from_arrays
from satflow.summary import format_summary, summarize_store

LEVELS = (0.01, 0.05, 0.50, 0.95, 0.99)


def test_shape_sizes_and_completeness(tiny_store):
    path, values = tiny_store
    summary = summarize_store(path)
    assert summary["shape"] == {"time": 4, "feature": 3, "lat": 20, "lon": 30}
    assert summary["complete"] is True and summary["ingested_steps"] == 4 and summary["finalised"] is True
    x = summary["arrays"]["X"]
    assert (x["dims"], x["dtype"], x["chunks"], x["shards"]) == (["time", "feature", "lat", "lon"], "float32",
                                                                 [1, 3, 8, 16], None)
    assert summary["arrays"]["M"]["dtype"] == "uint8" and summary["arrays"]["step_count"]["shape"] == [4, 3]
    stored = sum(entry["stored_bytes"] for entry in summary["arrays"].values())
    assert summary["size"]["stored_bytes"] == stored > 0
    assert summary["size"]["x_float32_bytes"] == values.size * 4
    assert summary["size"]["ratio_vs_float32"] == pytest.approx(values.size * 4 / stored)
    json.dumps(summary)  # JSON-able as is, no default= needed


def test_feature_statistics_equal_numpy(tiny_store):
    path, values = tiny_store
    rows = summarize_store(path)["features"]
    assert [row["name"] for row in rows] == ["a-1", "a-2", "b"]
    for f, row in enumerate(rows):
        x = values[:, f].astype(np.float64)
        valid = x[np.isfinite(x)]
        assert row["count"] == valid.size
        assert row["valid_fraction"] == valid.size / x.size
        assert row["mean"] == pytest.approx(valid.mean(), rel=1e-12)
        assert row["std"] == pytest.approx(valid.std(), rel=1e-9)
        assert (row["min"], row["max"]) == (valid.min(), valid.max())


def test_quantiles_are_exact_when_every_point_fits_the_sample(tiny_store):
    path, values = tiny_store
    summary = summarize_store(path)
    sampling = summary["quantiles"]
    assert sampling["approximate"] is True and sampling["chunks_read"] == sampling["chunks_total"] == 4 * 3 * 2
    for f, row in enumerate(summary["features"]):
        valid = values[:, f][np.isfinite(values[:, f])]
        assert sampling["points_per_feature"][row["name"]] == valid.size
        expected = np.quantile(valid, LEVELS)
        assert list(row["quantiles"]) == ["1%", "5%", "50%", "95%", "99%"]
        np.testing.assert_array_equal(list(row["quantiles"].values()), expected)


def test_quantile_sample_is_bounded_and_deterministic(tiny_store):
    path, values = tiny_store
    first = summarize_store(path, sample_points=200, sample_chunks=6)
    second = summarize_store(path, sample_points=200, sample_chunks=6)
    assert first["features"] == second["features"]
    assert first["quantiles"]["chunks_read"] == 6 and first["quantiles"]["chunks_total"] == 24
    assert set(first["quantiles"]["points_per_feature"].values()) == {200}
    for f, row in enumerate(first["features"]):
        exact = np.nanquantile(values[:, f], 0.5)
        assert abs(row["quantiles"]["50%"] - exact) < 2.0  # std is ~7: a 200-point median is close
        assert row["min"] <= row["quantiles"]["1%"] <= row["quantiles"]["99%"] <= row["max"]


def test_missing_data_per_time_step_and_provenance(tmp_path):
    values = np.arange(3 * 2 * 4 * 5, dtype=np.float32).reshape(3, 2, 4, 5)
    values[1, 0, :2] = np.nan  # 10 of 20 cells of feature 0 at step 1
    values[2] = np.nan  # step 2 entirely missing
    path = write_store_from_arrays(
        tmp_path / "gaps.zarr", values, times=np.array(["2021-03-01T00", "2021-03-01T06", "2021-03-01T12"],
                                                       dtype="datetime64[ns]"),
        features=["tb-1", "tb-2"], lat=np.arange(4.0), lon=np.arange(5.0),
        attrs={"satflow_config": json.dumps({"ingest": {"compression_level": 5}})},
        source_files=["f0.nc", "f1.nc", "f1.nc"],
    )
    summary = summarize_store(path)
    steps = summary["time_steps"]
    assert [step["time"] for step in steps] == ["2021-03-01T00:00:00", "2021-03-01T06:00:00", "2021-03-01T12:00:00"]
    assert [step["valid_fraction"] for step in steps] == [1.0, 0.75, 0.0]
    assert steps[1]["valid_fraction_by_feature"] == {"tb-1": 0.5, "tb-2": 1.0}
    assert [step["source_file"] for step in steps] == ["f0.nc", "f1.nc", "f1.nc"]
    assert [row["valid_fraction"] for row in summary["features"]] == [30 / 60, 40 / 60]
    provenance = summary["provenance"]
    assert provenance["config"] == {"ingest": {"compression_level": 5}}
    assert provenance["fingerprint"] == fingerprint(path) and provenance["source_files"] == 2
    assert provenance["satflow_version"]
    text = format_summary(summary)
    rows = [line.split() for line in text.splitlines() if line.startswith("2021-03-01T")]
    assert rows == [["2021-03-01T00:00:00", "100.0%", "yes", "f0.nc"], ["2021-03-01T06:00:00", "75.0%", "yes", "f1.nc"],
                    ["2021-03-01T12:00:00", "0.0%", "yes", "f1.nc"]]
    assert "2 distinct source files, first f0.nc, last f1.nc" in text


def test_incomplete_store_is_flagged(tiny_store):
    path, _ = tiny_store
    open_group(path, mode="r+")["ingested"][2] = 0
    summary = summarize_store(path)
    assert summary["complete"] is False and summary["ingested_steps"] == 3
    assert [step["ingested"] for step in summary["time_steps"]] == [True, True, False, True]
    assert "INCOMPLETE (3/4 steps ingested; re-run `satflow ingest` to finish)" in format_summary(summary)


def test_table_text(tiny_store):
    path, values = tiny_store
    text = format_summary(summarize_store(path))
    assert "shape    time 4 x feature 3 x lat 20 x lon 30" in text
    assert "status   complete" in text
    count = int(np.isfinite(values[:, 2]).sum())
    row = next(line for line in text.splitlines() if line.startswith("b  "))
    assert row.split()[:3] == ["b", f"{count / 2400 * 100:.1f}%", str(count)]
    assert f"up to {np.isfinite(values[:, 0]).sum()} valid points per feature from 24 of 24 chunk" in text
    x_row = next(line for line in text.splitlines() if line.startswith("X "))
    assert x_row.split()[:4] == ["X", "float32", "4x3x20x30", "1x3x8x16"]


def test_long_series_are_condensed(tmp_path):
    values = np.ones((40, 1, 2, 2), dtype=np.float32)
    values[7] = np.nan
    values[30, 0, 0] = np.nan
    times = np.datetime64("2020-01-01") + np.arange(40) * np.timedelta64(6, "h")
    path = write_store_from_arrays(tmp_path / "long.zarr", values, times=times, features=["x"],
                                   lat=np.arange(2.0), lon=np.arange(2.0))
    text = format_summary(summarize_store(path))
    assert "valid fraction per time step (all features): min 0.0%, median 100.0%, max 100.0%" in text
    assert "emptiest: 2020-01-02T18:00:00 0.0%, 2020-01-08T12:00:00 50.0%" in text
    spark = next(line for line in text.splitlines() if "(40 steps, left to right)" in line).split()[0]
    assert len(spark) == 40 and spark[7] == "▁" and spark[30] == "▅" and spark[0] == "█"


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="no satflow store here"):
        summarize_store(tmp_path / "missing.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=3).create_array("a", shape=(2,), dtype="f4")
    with pytest.raises(StoreError, match=r"plain.zarr: a Zarr group, but not a satflow store"):
        summarize_store(tmp_path / "plain.zarr")


def test_inspect_command(tiny_store, capsys):
    path, _ = tiny_store
    assert cli_main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["shape"]["feature"] == 3
    assert cli_main(["inspect", str(path)]) == 0
    assert "provenance" in capsys.readouterr().out
    assert cli_main(["inspect", str(path / "nope")]) == 1
    assert "no satflow store here" in capsys.readouterr().err
