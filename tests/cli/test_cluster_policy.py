"""One rule for when a command opens a cluster (satflow.runtime.cluster), and the flag that chooses it."""

from __future__ import annotations

import pytest

from satflow.cli import build_parser
from satflow.runtime.cluster import (CLUSTER_FROM_LIGHT_TASKS, CLUSTER_FROM_SCANS, CLUSTER_FROM_TASKS, client_for,
                                    cluster_wanted)
from satflow.runtime.options import ClusterConfig

LOCAL = ClusterConfig()
SLURM = ClusterConfig(kind="slurm")
ADDRESS = ClusterConfig(kind="address", address="tcp://127.0.0.1:8786")


def test_thresholds_are_the_documented_ones():
    assert (CLUSTER_FROM_TASKS, CLUSTER_FROM_LIGHT_TASKS, CLUSTER_FROM_SCANS) == (8, 64, 4096)


@pytest.mark.parametrize("cluster, n_tasks, from_tasks, wanted", [
    (LOCAL, 7, CLUSTER_FROM_TASKS, False),
    (LOCAL, 8, CLUSTER_FROM_TASKS, True),
    (LOCAL, 63, CLUSTER_FROM_LIGHT_TASKS, False),
    (LOCAL, 64, CLUSTER_FROM_LIGHT_TASKS, True),
    (LOCAL, 4095, CLUSTER_FROM_SCANS, False),  # a dry run scans thousands of files in-process
    (LOCAL, 4096, CLUSTER_FROM_SCANS, True),
    (SLURM, 1, CLUSTER_FROM_TASKS, True),  # a cluster was asked for: use it, however small the work
    (ADDRESS, 0, CLUSTER_FROM_LIGHT_TASKS, True),
])
def test_auto_opens_for_large_work_or_a_configured_cluster(cluster, n_tasks, from_tasks, wanted):
    assert cluster_wanted("auto", cluster, n_tasks, from_tasks=from_tasks) is wanted


@pytest.mark.parametrize("cluster", [LOCAL, SLURM, ADDRESS])
def test_always_and_never_decide_alone(cluster):
    assert cluster_wanted("always", cluster, 0) is True
    assert cluster_wanted("never", cluster, 10_000) is False


def test_an_unknown_choice_names_the_flag():
    with pytest.raises(ValueError, match="--cluster 'sometimes': choose one of auto, always, never"):
        cluster_wanted("sometimes", LOCAL, 1)


def test_small_work_gets_no_client():
    with client_for("auto", LOCAL, 1) as client:
        assert client is None


@pytest.mark.parametrize("argv, expected", [
    (["eval", "s.zarr", "--out", "o"], "auto"),
    (["eval", "s.zarr", "--out", "o", "--no-cluster"], "never"),
    (["eval", "s.zarr", "--out", "o", "--cluster", "always"], "always"),
    (["ingest", "a.nc", "--out", "s.zarr"], "auto"),
    (["ingest", "a.nc", "--out", "s.zarr", "--cluster", "never"], "never"),
    (["index", "s.zarr", "--out", "i.parquet", "--cluster"], "always"),  # the old bare flag
    (["index", "build", "s.zarr", "--out", "i.parquet"], "auto"),
    (["index", "stratify", "i.parquet", "--out", "j.parquet", "--cluster"], "always"),
    (["index", "stratify", "i.parquet", "--out", "j.parquet", "--cluster", "never"], "never"),
    (["decode", "c.zarr", "--out", "r.zarr"], "auto"),
    (["decode", "c.zarr", "--out", "r.zarr", "--cluster", "always"], "always"),
])
def test_every_command_with_distributable_work_takes_the_flag(argv, expected):
    assert build_parser().parse_args(argv).cluster == expected


def test_a_small_ingest_runs_in_this_process(tmp_path):
    """Two files under cluster.kind local: auto writes the store without importing distributed at all."""
    import subprocess
    import sys

    import numpy as np
    import xarray as xr

    for step in range(2):
        xr.Dataset({"tb": (("time", "lat", "lon"), np.full((1, 4, 8), 250.0 + step, np.float32), {"units": "K"})},
                   coords={"time": [np.datetime64("2020-01-01T00") + np.timedelta64(6 * step, "h")],
                           "lat": ("lat", np.linspace(-7.5, 7.5, 4), {"units": "degrees_north"}),
                           "lon": ("lon", np.linspace(0.0, 35.0, 8), {"units": "degrees_east"})},
                   ).to_netcdf(tmp_path / f"tb_{step}.nc")
    store = tmp_path / "tb.zarr"
    script = ("import sys\nfrom satflow.cli import main\ncode = main(sys.argv[1:])\n"
              "print('distributed imported:', 'distributed' in sys.modules)\nsys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", script, "ingest", str(tmp_path), "--out", str(store),
                             "--no-progress"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"region(s) into {store} (2 time steps)" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "distributed imported: False"
    assert xr.open_zarr(store)["X"].shape == (2, 1, 4, 8)


def test_decode_of_a_small_compressed_store_runs_in_this_process(tiny_store, tmp_path, capsys):
    """6 decode tasks under cluster.kind local: auto decodes here, bit for bit as the eval wrote it."""
    import numpy as np
    import xarray as xr

    from satflow.cli import main

    path, _ = tiny_store
    out = tmp_path / "eval"
    assert main(["eval", str(path), "--codec", "sz3:tol=0.5", "--out", str(out), "--no-cluster", "--no-progress"]) == 0
    (folder,) = [p for p in out.iterdir() if (p / "compressed.zarr").is_dir()]
    capsys.readouterr()
    assert main(["decode", str(folder / "compressed.zarr"), "--out", str(tmp_path / "rec.zarr")]) == 0
    printed = capsys.readouterr()
    assert printed.out == f"decoded {folder / 'compressed.zarr'} -> {tmp_path / 'rec.zarr'}\n"
    assert "dashboard" not in printed.err.lower()
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "rec.zarr")["X"].values,
                                  xr.open_zarr(folder / "compressed.zarr")["X"].values)
