"""The eval plan is plain data: blocks, tasks and codec specs, made without a cluster or any coding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from satflow.eval.options import EvalConfig
from satflow.eval.plan import Block, parse_time_range, plan_eval
from satflow.eval.scan import scan_eval


def _plan_store(path, config):
    """The plan of a store on disk: its facts scanned, then the pure planner."""
    return plan_eval(scan_eval(path, config), config)


def test_default_blocks_are_the_store_chunks_and_cover_every_cell_once(eval_store):
    path, values = eval_store
    plan = _plan_store(path, EvalConfig(codecs=["sz3:tol=1"]))
    assert plan.block_shape == (8, 16) and plan.reconstruction_chunks == (8, 16)
    covered = np.zeros(values.shape[:1] + values.shape[2:], int)
    for block in plan.blocks:
        covered[block.t, block.y0:block.y1, block.x0:block.x1] += 1
    assert (covered == 1).all()
    assert len(plan.blocks) == 3 * 3 * 3 and plan.blocks[2] == Block(0, 0, 8, 32, 40)  # the edge block is narrower
    assert plan.fields == [Block(t, 0, 24, 0, 40) for t in range(3)]


def test_a_task_codes_whole_fields_per_codec(eval_store):
    """A field's 9 blocks exceed a batch of 4: one whole field a task, never part of one."""
    path, _ = eval_store
    plan = _plan_store(path, EvalConfig(codecs=["sz3:tol=1", "lossless"], batch_size=4, time="1:2"))
    assert [b.t for b in plan.blocks] == [1] * 9
    assert [(t.codec, t.blocks, t.regions) for t in plan.tasks] == [(0, tuple(range(9)), (0,)),
                                                                    (1, tuple(range(9)), (0,))]


def test_consecutive_fields_share_a_task_while_their_blocks_fit_the_batch(eval_store):
    path, _ = eval_store
    plan = _plan_store(path, EvalConfig(codecs=["lossless"], batch_size=18))
    assert [(t.blocks, t.regions) for t in plan.tasks] == [(tuple(range(18)), (0, 1)), (tuple(range(18, 27)), (2,))]


def test_a_block_shape_is_a_setting(eval_store):
    path, _ = eval_store
    plan = _plan_store(path, EvalConfig(codecs=["lossless"], block={"lat": 24, "lon": 0}))
    assert plan.block_shape == (24, 16) and len(plan.blocks) == 3 * 3


def test_duplicate_specs_run_once_and_the_checkpoint_fills_learned_ones(eval_store):
    path, _ = eval_store
    plan = _plan_store(path, EvalConfig(codecs=["sz3:tol=1", {"name": "sz3", "params": {"tol": 1}}, "vaeformer"],
                                      checkpoint="ck"))
    assert [str(c) for c in plan.codecs] == ["sz3:tol=1", "vaeformer"]
    assert plan.codecs[1].build_params() == {"checkpoint": "ck"}


def test_the_plan_prints_and_serialises(eval_store):
    path, _ = eval_store
    plan = _plan_store(path, EvalConfig(codecs=["sz3:tol=1"], field_metrics=False))
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
        _plan_store(path, EvalConfig(codecs=["lossless"], index=str(tmp_path / "i.parquet"), split="nosuch"))


# --- plan_eval over facts built by hand: no store, no file, no cluster -------------------------------
def _facts(shape=(5, 2, 24, 40), chunks=(8, 16), index_rows=None):
    from satflow.eval.plan import EvalFacts

    return EvalFacts(store="/nonexistent/cube.zarr", fingerprint="f00d", shape=shape, chunks=chunks,
                     features=("a", "b")[:shape[1]], times=np.arange(shape[0]), time_numbers=np.arange(shape[0]),
                     time_attrs={"units": "hours since 2021-03-01"}, lat=np.arange(shape[2]), lon=np.arange(shape[3]),
                     index_rows=index_rows)


def _index_rows():
    import pandas as pd

    rows = [(t, y0, x0, 8, 8, split) for t in range(5) for y0, x0, split in
            [(0, 0, "train"), (0, 8, "test"), (8, 16, "test"), (16, 24, "val"), (16, 32, "test")]]
    return pd.DataFrame(rows, columns=["t", "y0", "x0", "height", "width", "split"])


def test_a_plan_of_hand_built_facts_lays_out_blocks_batches_and_time():
    plan = plan_eval(_facts(), EvalConfig(codecs=["sz3:tol=1", "lossless"], time="1:3", batch_size=4))
    assert (plan.store, plan.fingerprint, plan.shape, plan.features) == ("/nonexistent/cube.zarr", "f00d",
                                                                        (5, 2, 24, 40), ("a", "b"))
    assert plan.time_range == (1, 3) and plan.mode == "cube"
    assert plan.block_shape == (8, 16) and plan.reconstruction_chunks == (8, 16)
    assert len(plan.blocks) == 2 * 3 * 3
    assert plan.blocks[:4] == [Block(1, 0, 8, 0, 16), Block(1, 0, 8, 16, 32), Block(1, 0, 8, 32, 40),
                               Block(1, 8, 16, 0, 16)]
    assert plan.blocks[-1] == Block(2, 16, 24, 32, 40)
    assert plan.fields == [Block(1, 0, 24, 0, 40), Block(2, 0, 24, 0, 40)]
    assert [(t.codec, t.blocks, t.regions) for t in plan.tasks] == [
        (c, b, (r,)) for c in (0, 1) for r, b in enumerate((tuple(range(9)), tuple(range(9, 18))))]


def test_a_block_larger_than_the_store_is_clipped_to_it():
    plan = plan_eval(_facts(), EvalConfig(codecs=["lossless"], time="4", block={"lat": 100, "lon": 30}))
    assert plan.blocks == [Block(4, 0, 24, 0, 30), Block(4, 0, 24, 30, 40)]
    assert plan.block_shape == (100, 30) and plan.reconstruction_chunks == (24, 30)


def test_an_index_plan_samples_rows_of_one_split_inside_the_time_range():
    config = EvalConfig(codecs=["lossless"], index="i.parquet", split="test", sample=4, seed=1, time="1:4")
    plan = plan_eval(_facts(index_rows=_index_rows()), config)
    assert plan.mode == "index" and plan.block_shape == (8, 8) and plan.reconstruction_chunks == (8, 16)
    assert plan.blocks == [Block(1, 0, 8, 8, 16), Block(1, 16, 24, 32, 40), Block(2, 16, 24, 32, 40),
                           Block(3, 16, 24, 32, 40)]
    assert plan.fields == plan.blocks
    # One task per time step: patches of one step may share a chunk of the reconstruction.
    assert [task.blocks for task in plan.tasks] == [(0, 1), (2,), (3,)]
    every_split = plan_eval(_facts(index_rows=_index_rows()),
                            EvalConfig(codecs=["lossless"], index="i.parquet", split=None, sample=3, seed=0))
    assert every_split.blocks == [Block(0, 16, 24, 32, 40), Block(2, 16, 24, 32, 40), Block(3, 0, 8, 0, 8)]


@pytest.mark.parametrize("rows, options, message", [
    ("index", {"split": "nosuch"}, r"^i.parquet: no patch in split 'nosuch'; its splits: test, train, val$"),
    ("index", {"split": "val", "time": "0"}, None),
    ("index", {"split": "train", "time": "9:10"}, r"outside the store's 0..5 time steps"),
    ("wrapping", {"split": None}, r"^i.parquet: 1 sampled patch\(es\) wrap around the longitude seam \(e.g. x0=36\)"),
    (None, {}, r"^eval.index is 'i.parquet' but the store's facts hold no index rows"),
])
def test_index_plans_refuse_what_they_cannot_code(rows, options, message):
    import pandas as pd

    frame = {"index": _index_rows(), "wrapping": pd.DataFrame(
        [(0, 0, 36, 8, 8, "test")], columns=["t", "y0", "x0", "height", "width", "split"]), None: None}[rows]
    config = EvalConfig(codecs=["lossless"], index="i.parquet", **options)
    if message is None:
        assert plan_eval(_facts(index_rows=frame), config).blocks == [Block(0, 16, 24, 24, 32)]
        return
    with pytest.raises(ValueError, match=message):
        plan_eval(_facts(index_rows=frame), config)


def test_a_plan_checks_every_spec_against_its_codec_schema_before_anything_runs():
    from satflow.codecs.spec import CodecSpecError

    with pytest.raises(CodecSpecError, match=r"^codec spec 'sz3:tol=0': codec 'sz3': parameter 'tol' = 0 is invalid"):
        plan_eval(_facts(), EvalConfig(codecs=["lossless", "sz3:tol=0"]))
    with pytest.raises(CodecSpecError, match=r"^codec spec 'vaeformer': codec 'vaeformer' needs parameter "
                                             r"'checkpoint'"):
        plan_eval(_facts(), EvalConfig(codecs=["vaeformer"]))


def test_planning_touches_no_file_and_imports_no_store_or_cluster_library():
    """In a fresh interpreter: plans over facts of a store that does not exist, cube and index mode."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent('''
        import sys
        import numpy as np
        import pandas as pd
        from satflow.eval.options import EvalConfig
        from satflow.eval.plan import EvalFacts, plan_eval

        rows = pd.DataFrame([(1, 0, 0, 8, 8, "test")], columns=["t", "y0", "x0", "height", "width", "split"])
        facts = EvalFacts("/nonexistent/cube.zarr", "f00d", (3, 2, 24, 40), (8, 16), ("a", "b"), np.arange(3),
                          np.arange(3), {}, np.arange(24), np.arange(40), index_rows=rows)
        cube = plan_eval(facts, EvalConfig(codecs=["sz3:tol=1", "errorbound:inner=sz3,eps=0.5"]))
        index = plan_eval(facts, EvalConfig(codecs=["lossless"], index="/nonexistent/i.parquet"))
        print(len(cube.tasks), len(index.blocks))
        print(sorted(m for m in ("zarr", "xarray", "dask", "distributed", "torch") if m in sys.modules))
    ''')
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["6 1", "[]"]  # 3 whole fields (9 blocks each, batch 4), 2 codecs


def test_the_scan_reads_the_facts_once_and_the_plan_over_them_is_the_same(eval_store):
    from satflow.eval.scan import scan_eval

    path, values = eval_store
    config = EvalConfig(codecs=["lossless"], time="1:3")
    facts = scan_eval(path, config)
    assert (facts.store, facts.shape, facts.chunks) == (str(path.resolve()), (3, 2, 24, 40), (8, 16))
    assert facts.features == ("tmbrs-1", "tmbrs-2") and facts.units == ("K", "K") and facts.index_rows is None
    assert facts.times.tolist() == (np.datetime64("2021-03-01", "ns") + np.arange(3) * np.timedelta64(6, "h")).tolist()
    assert facts.lat.tolist() == np.linspace(-11.5, 11.5, 24).tolist() and len(facts.lon) == 40
    np.testing.assert_allclose(facts.std, [np.nanstd(values[:, f].astype(np.float64)) for f in range(2)], rtol=1e-6)
    assert len(facts.time_numbers) == 3 and "units" in facts.time_attrs
    assert plan_eval(facts, config).to_dict() == _plan_store(path, config).to_dict()


def test_a_missing_checkpoint_is_refused_before_any_output_naming_the_spec(eval_store, tmp_path):
    from satflow.codecs.spec import CodecSpecError
    from satflow.eval.api import run_eval

    path, _ = eval_store
    config = EvalConfig(codecs=["errorbound:inner=vaeformer,eps=0.5"], checkpoint=str(tmp_path / "absent"))
    with pytest.raises(CodecSpecError, match=r"^codec spec 'errorbound:eps=0.5,inner=vaeformer': checkpoint "
                                             r".*absent does not exist"):
        run_eval(path, tmp_path / "out", config, progress=False)
    assert not (tmp_path / "out").exists()


def test_prepare_eval_checks_everything_a_run_needs_and_writes_nothing(eval_store, tmp_path):
    from satflow.eval.api import prepare_eval
    from satflow.store import StoreError

    path, _ = eval_store
    facts, plan = prepare_eval(path, EvalConfig(codecs=["sz3:tol=1"], time="2"))
    assert facts.shape == (3, 2, 24, 40) and plan.time_range == (2, 3) and len(plan.blocks) == 9
    with pytest.raises(StoreError, match=r"nowhere.zarr: no satflow store here"):
        prepare_eval(tmp_path / "nowhere.zarr", EvalConfig())
    with pytest.raises(ValueError, match=r"eval time '7' is outside the store's 0..3 time steps"):
        prepare_eval(path, EvalConfig(time="7"))


def test_preparing_an_eval_reads_the_facts_without_importing_dask(eval_store):
    """The one facts scan goes through zarr and satflow's CF time rules: importing dask.array (seconds on
    a loaded machine) waits until something computes."""
    import subprocess
    import sys

    path, _ = eval_store
    script = ("import sys\nfrom satflow.eval.api import prepare_eval\nfrom satflow.eval.options import EvalConfig\n"
              f"facts, plan = prepare_eval({str(path)!r}, EvalConfig())\n"
              "print(len(plan.tasks), str(facts.times[1]), 'dask.array' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "2021-03-01T06:00:00.000000000", "False"]
