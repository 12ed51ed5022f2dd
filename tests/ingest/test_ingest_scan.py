"""How the ingest scan splits its files into worker tasks (`satflow.ingest.scan.scan_batches`): pure."""

from __future__ import annotations

import pytest

from satflow.ingest.inputs import IngestError, expand_inputs
from satflow.ingest.scan import MIN_SCAN_BATCHES, SCAN_BATCH_FILES, scan_batches


def test_scan_batches_keep_every_file_once_in_order_in_at_least_16_batches_of_at_most_64():
    assert (MIN_SCAN_BATCHES, SCAN_BATCH_FILES) == (16, 64)
    paths = [f"f{i}.nc" for i in range(40)]
    batches = scan_batches(paths)
    assert [len(b) for b in batches] == [2] * 20 and [p for b in batches for p in b] == paths
    many = scan_batches([f"f{i}.nc" for i in range(2000)])
    assert len(many) == 32 and {len(b) for b in many} == {64, 16} and len(many[-1]) == 16
    assert scan_batches(["a.nc", "b.nc"]) == [["a.nc"], ["b.nc"]]
    assert scan_batches([]) == []


def test_inputs_expand_directories_globs_and_paths_once_each_in_order(tmp_path):
    for name in ("b.nc", "a.nc", "notes.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.nc").write_text("")
    found = expand_inputs([str(tmp_path), str(tmp_path / "**" / "*.nc"), str(tmp_path / "a.nc")])
    assert found == [str(tmp_path / "a.nc"), str(tmp_path / "b.nc"), str(tmp_path / "sub" / "c.nc")]


def test_an_input_matching_nothing_is_named(tmp_path):
    (tmp_path / "a.nc").write_text("")
    with pytest.raises(IngestError, match=f"{tmp_path}/z\\*.nc: no such file or no file matches"):
        expand_inputs([str(tmp_path / "a.nc"), str(tmp_path / "z*.nc")])
