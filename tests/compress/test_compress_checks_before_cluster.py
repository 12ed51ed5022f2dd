"""`satflow compress --cluster always` refuses a missing store, a bad spec and a foreign --out before any cluster
starts: a fresh process answers with the message and exit 1 without ever importing `distributed`."""

from __future__ import annotations

import subprocess
import sys

import pytest

RUN_AND_REPORT = ("import sys\n"
                  "from satflow.cli import main\n"
                  "code = main(sys.argv[1:])\n"
                  "print('distributed imported:', 'distributed' in sys.modules)\n"
                  "sys.exit(code)\n")


@pytest.mark.parametrize("case, message", [
    ("missing", "satflow compress: error: {tmp}/none.zarr: no satflow store here (no Zarr v3 group); "
                "run `satflow ingest` first"),
    ("spec", "satflow compress: error: codec spec 'sz3:speed=3': codec 'sz3' has no parameter 'speed'"),
    ("out", "satflow compress: error: {tmp}/taken: exists and is not a store written by `satflow compress`; "
            "pass --overwrite to replace it, or choose another --out"),
])
def test_refused_before_any_cluster(tiny_store, tmp_path, case, message):
    store, _ = tiny_store
    (tmp_path / "taken").mkdir()
    source = tmp_path / "none.zarr" if case == "missing" else store
    spec = "sz3:speed=3" if case == "spec" else "sz3:tol=0.5"
    out = tmp_path / ("taken" if case == "out" else "c.zarr")
    result = subprocess.run([sys.executable, "-c", RUN_AND_REPORT, "compress", str(source), "--codec", spec,
                             "--out", str(out), "--cluster", "always"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert message.format(tmp=tmp_path.resolve()) in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "distributed imported: False"
    assert not (tmp_path / "c.zarr").exists() and list((tmp_path / "taken").iterdir()) == []
