"""The eval plan is plain data: blocks, tasks and codec specs, made without a cluster or any coding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from satflow.eval.options import EvalConfig
from satflow.eval.plan import Block, parse_time_range, plan_eval


def test_default_blocks_are_the_store_chunks_and_cover_every_cell_once(eval_store):
    path, values = eval_store
    plan = plan_eval(path, EvalConfig(codecs=["sz3:tol=1"]))
    assert plan.block_shape == (8, 16) and plan.reconstruction_chunks == (8, 16)
    covered = np.zeros(values.shape[:1] + values.shape[2:], int)
    for block in plan.blocks:
        covered[block.t, block.y0:block.y1, block.x0:block.x1] += 1
    assert (covered == 1).all()
    assert len(plan.blocks) == 3 * 3 * 3 and plan.blocks[2] == Block(0, 0, 8, 32, 40)  # the edge block is narrower
    assert plan.fields == [Block(t, 0, 24, 0, 40) for t in range(3)]


def test_tasks_batch_consecutive_blocks_per_codec(eval_store):
    path, _ = eval_store
    plan = plan_eval(path, EvalConfig(codecs=["sz3:tol=1", "lossless"], batch_size=4, time="1:2"))
    assert [b.t for b in plan.blocks] == [1] * 9
    assert [(t.codec, t.blocks) for t in plan.tasks] == [
        (0, (0, 1, 2, 3)), (0, (4, 5, 6, 7)), (0, (8,)), (1, (0, 1, 2, 3)), (1, (4, 5, 6, 7)), (1, (8,))]


def test_a_block_shape_is_a_setting(eval_store):
    path, _ = eval_store
    plan = plan_eval(path, EvalConfig(codecs=["lossless"], block={"lat": 24, "lon": 0}))
    assert plan.block_shape == (24, 16) and len(plan.blocks) == 3 * 3


def test_duplicate_specs_run_once_and_the_checkpoint_fills_learned_ones(eval_store):
    path, _ = eval_store
    plan = plan_eval(path, EvalConfig(codecs=["sz3:tol=1", {"name": "sz3", "params": {"tol": 1}}, "vaeformer"],
                                      checkpoint="ck"))
    assert [str(c) for c in plan.codecs] == ["sz3:tol=1", "vaeformer"]
    assert plan.codecs[1].build_params() == {"checkpoint": "ck"}


def test_the_plan_prints_and_serialises(eval_store):
    path, _ = eval_store
    plan = plan_eval(path, EvalConfig(codecs=["sz3:tol=1"], field_metrics=False))
    text = plan.describe()
    assert "blocks    27 of 8 x 16 cells x 2 features (0.0 MB of float32)" in text
    assert "sz3:tol=1  ->  sz3-tol=1/" in text
    data = json.loads(plan.to_json())
    assert data["blocks"][0] == {"t": 0, "y0": 0, "y1": 8, "x0": 0, "x1": 16} and data["fields"] == []


@pytest.mark.parametrize("text, expected", [(None, (0, 5)), ("2", (2, 3)), ("1:4", (1, 4)), (":2", (0, 2)),
                                            ("3:", (3, 5))])
def test_time_ranges(text, expected):
    assert parse_time_range(text, 5) == expected


@pytest.mark.parametrize("text, message", [("4:9", "outside the store's 0..5"), ("a:b", "expected an index I or a range"),
                                           ("3:3", "outside"), ("1:2:3", "expected an index")])
def test_bad_time_ranges_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_time_range(text, 5)


def test_index_mode_refuses_an_empty_split(eval_store, tmp_path):
    from satflow.index import build_index
    from satflow.index.options import IndexConfig

    path, _ = eval_store
    build_index(path, tmp_path / "i.parquet", IndexConfig(patch_size=8, stride=8, max_nodata_fraction=1.0))
    with pytest.raises(ValueError, match=r"no patch in split 'nosuch'; its splits: "):
        plan_eval(path, EvalConfig(codecs=["lossless"], index=str(tmp_path / "i.parquet"), split="nosuch"))
