"""Arguments, paths, specs and store facts are checked before any cluster starts.

Each command runs in a fresh process, with `--cluster always` where the flag exists, so that only
the order of the checks keeps the cluster from starting: the process must answer with the message
and exit 1 without ever importing `distributed` (nor printing a dashboard link).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

RUN_AND_REPORT = ("import sys\n"
                  "from satflow.cli import main\n"
                  "code = main(sys.argv[1:])\n"
                  "print('distributed imported:', 'distributed' in sys.modules)\n"
                  "sys.exit(code)\n")


def run_satflow(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_AND_REPORT, *argv], capture_output=True, text=True, timeout=120)


def assert_refused_without_cluster(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "distributed imported: False"
    assert "dashboard" not in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize("cluster_flag", [[], ["--cluster", "always"]])
def test_eval_of_a_missing_store(tmp_path, cluster_flag):
    result = run_satflow("eval", "/nonexistent.zarr", "--codec", "sz3:tol=0.5", "--out", str(tmp_path / "X"),
                         *cluster_flag)
    assert_refused_without_cluster(result, "satflow eval: error: /nonexistent.zarr: no satflow store here "
                                           "(no Zarr v3 group); run `satflow ingest` first")
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize("cluster_flag", [[], ["--cluster", "always"]])
def test_eval_of_an_unknown_codec(tiny_store, tmp_path, cluster_flag):
    path, _ = tiny_store
    result = run_satflow("eval", str(path), "--codec", "nosuchcodec", "--out", str(tmp_path / "X"), *cluster_flag)
    assert_refused_without_cluster(result, "satflow eval: error: codec spec 'nosuchcodec': unknown codec "
                                           "'nosuchcodec'; registered codecs: ")
    assert not (tmp_path / "X").exists()


def test_eval_of_a_time_range_outside_the_store(tiny_store, tmp_path):
    path, _ = tiny_store
    result = run_satflow("eval", str(path), "--codec", "sz3:tol=0.5", "--time", "2:9", "--out", str(tmp_path / "X"),
                         "--cluster", "always")
    assert_refused_without_cluster(result, "eval time '2:9' is outside the store's 0..4 time steps")


def test_ingest_with_no_matching_input(tmp_path):
    result = run_satflow("ingest", str(tmp_path / "*.nc"), "--out", str(tmp_path / "s.zarr"), "--cluster", "always")
    assert_refused_without_cluster(result, f"{tmp_path}/*.nc: no such file or no file matches")


def test_ingest_overwrite_keeps_the_store_when_inputs_match_nothing(tiny_store, tmp_path):
    path, _ = tiny_store
    result = run_satflow("ingest", str(tmp_path / "*.nc"), "--out", str(path), "--overwrite")
    assert_refused_without_cluster(result, "no such file or no file matches")
    assert (path / "zarr.json").exists()


def test_index_build_of_a_missing_store(tmp_path):
    result = run_satflow("index", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "i.parquet"),
                         "--cluster", "always")
    assert_refused_without_cluster(result, f"{tmp_path / 'none.zarr'}: no satflow store here")


def test_index_stratify_of_a_missing_index(tmp_path):
    result = run_satflow("index", "stratify", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "s.parquet"),
                         "--feature", "b", "--cluster", "always")
    assert_refused_without_cluster(result, "none.parquet: no such index")


def test_decode_of_a_folder_that_is_no_compressed_store(tmp_path):
    result = run_satflow("decode", str(tmp_path), "--out", str(tmp_path / "rec.zarr"), "--cluster", "always")
    assert_refused_without_cluster(result, f"satflow decode: error: {tmp_path}: no compressed store here "
                                           "(written by `satflow eval`)")
