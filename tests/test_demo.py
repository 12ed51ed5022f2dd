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


def test_run_pipeline_opens_the_cluster_for_its_stages_only_and_calls_the_hook(tmp_path):
    """The function demo and jobs/pipeline.py share: stage order, hook records, the cluster's span."""
    import contextlib

    import pytest

    from satflow.config import load_config
    from satflow.pipeline import demo_config, demo_paths, run_pipeline

    events = []

    @contextlib.contextmanager
    def cluster():
        events.append("cluster opened")
        yield None  # no client: the stages run in this process
        events.append("cluster closed")

    @contextlib.contextmanager
    def hook(record):
        events.append(f"{record.name} started")
        yield
        events.append(f"{record.name} done: {record.summary.splitlines()[0]}")

    config = demo_config(load_config(None), steps=2, resolution=6, patch_size=8)
    paths = demo_paths(tmp_path)
    records = run_pipeline(config, paths, ["inspect", "ingest", "sample"], cluster=cluster, hook=hook)
    assert list(records) == ["sample", "ingest", "inspect"]  # pipeline order, whatever the order asked
    assert events == [
        "sample started", f"sample done: wrote 2 sample files to {paths.raw}",
        "cluster opened",
        "ingest started", f"ingest done: ingested 2 region(s) into {paths.store} (2 time steps)",
        "cluster closed",
        "inspect started", f"inspect done: {records['inspect'].summary.splitlines()[0]}",
    ]
    assert records["inspect"].result["shape"]["feature"] == 15
    with pytest.raises(ValueError, match="unknown pipeline stage\\(s\\) train; choose from sample, ingest, inspect"):
        run_pipeline(config, paths, ["train"])
