"""`satflow status`: complete and pending parts of a store and an eval directory, read from disk only."""

from __future__ import annotations

import argparse
import json

import pytest

from satflow.cli import status as status_command
from satflow.status import format_status, status_of
from satflow.eval.api import run_eval
from satflow.eval.options import EvalConfig
from satflow.store import open_group


def _parser():
    parser = argparse.ArgumentParser()
    status_command.register(parser.add_subparsers(dest="command"), argparse.ArgumentParser(add_help=False))
    return parser


def test_store_status_names_pending_steps(tiny_store):
    path, _ = tiny_store
    assert status_of(path) == {"kind": "store", "path": str(path), "steps": 4, "ingested": 4, "pending_steps": [],
                               "pending_files": [], "finalised": True, "complete": True}
    open_group(path, mode="r+")["ingested"][2] = 0  # as if the task writing step 2 died
    report = status_of(path)
    assert (report["ingested"], report["pending_steps"], report["complete"]) == (3, [2], False)
    assert format_status(report).splitlines() == [f"store {path}: 3 of 4 time steps ingested, finalised",
                                                  "  pending steps: 2"]


def test_eval_status_counts_blocks_per_codec_and_workers(tiny_store, tmp_path, capsys):
    path, _ = tiny_store
    out = tmp_path / "eval"
    result = run_eval(path, out, EvalConfig(codecs=["sz3:tol=0.5", "bitround:keepbits=6"]), progress=False)
    n_blocks = len(result.plan.blocks)
    report = status_of(out)
    assert report["complete"] and report["workers"] == {"in-process": len(result.manifest["tasks"])}
    assert [(c["codec"], c["blocks_done"], c["blocks_pending"]) for c in report["codecs"]] == [
        ("sz3:tol=0.5", n_blocks, 0), ("bitround:keepbits=6", n_blocks, 0)]
    # block 0's X chunk: the marker of a finished block in the compressed store
    (out / result.entries[1]["dir"] / "compressed.zarr" / "X" / "c" / "0" / "0" / "0" / "0").unlink()
    (out / "metrics.json").unlink()  # an interrupted run: metrics not written yet
    args = _parser().parse_args(["status", str(out)])
    assert args.handler(args, None) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"eval {out}: {n_blocks} block(s) per codec, metrics pending"
    assert printed[1].split() == ["sz3:tol=0.5", str(n_blocks), "done", "0", "pending"]
    assert printed[2].split() == ["bitround:keepbits=6", str(n_blocks - 1), "done", "1", "pending"]
    args = _parser().parse_args(["status", str(out), "--json"])
    args.handler(args, None)
    assert json.loads(capsys.readouterr().out)["codecs"][1]["blocks_pending"] == 1


def test_status_of_something_else_says_what_it_expected(tmp_path, capsys):
    args = _parser().parse_args(["status", str(tmp_path)])
    assert args.handler(args, None) == 2
    assert "neither a store (zarr.json), an eval directory (plan.json) nor a pipeline output directory" in \
        capsys.readouterr().err
    with pytest.raises(ValueError, match="no such file or directory"):
        status_of(tmp_path / "missing")
