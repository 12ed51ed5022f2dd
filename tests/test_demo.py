"""`satflow demo`, the README's first command, end to end on a LocalCluster (small settings)."""

from __future__ import annotations

import json

import xarray as xr

from satflow.cli import main


def test_demo_runs_the_whole_pipeline_and_ends_with_the_report(tmp_path, capsys):
    out = tmp_path / "demo"
    codecs = ["sz3:tol=0.5", "errorbound:inner=constant,eps=1.0,context=learned", "vaeformer:qstep=1"]
    argv = ["demo", "--out", str(out), "--steps", "2", "--resolution", "6", "--patch-size", "8"]
    assert main(argv + [arg for codec in codecs for arg in ("--codec", codec)]) == 0
    printed = capsys.readouterr().out
    for stage in ("[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6] report:"):
        assert stage in printed
    store = xr.open_zarr(out / "amsua.zarr")
    assert [str(f) for f in store["feature"].values] == [f"tmbrs-{k}" for k in range(1, 16)]
    assert (out / "patches.parquet").exists()
    entries = json.loads((out / "eval" / "metrics.json").read_text())
    assert [e["codec"] for e in entries] == ["sz3:tol=0.5", "errorbound:context=learned,eps=1.0,inner=constant",
                                             "vaeformer:qstep=1"]
    assert entries[1]["per_feature"]["violations"] == [0] * 15  # the shipped context network keeps the bound
    assert all(e["bits_per_value"] > 0 for e in entries)
    html = (out / "eval" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    for entry in entries:
        assert entry["codec"] in printed  # the closing table names every codec
    manifest = json.loads((out / "eval" / "manifest.json").read_text())
    assert manifest["cluster"]["kind"] == "dask" and manifest["cluster"]["workers"] == 2
