"""The pure ingest planner (`satflow.ingest.plan.plan_ingest`) on facts built by hand: no file, no store,
no cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from satflow.ingest.options import IngestConfig
from satflow.ingest.facts import IngestFacts, ProductFacts, Skipped, StoreFacts
from satflow.ingest.plan import IngestError, Slot, plan_ingest, recorded_config
from satflow.sources.base import FileInfo
from satflow.store import StoreLayout

LAT = np.array([-1.5, -0.5, 0.5, 1.5])
LON = np.array([10.0, 11.0, 12.0, 13.0, 14.0])
FEATURES = ("tb-1", "tb-2")
START = np.datetime64("2020-01-01T00", "ns")
STORE = "/nowhere/cube.zarr"  # never opened: the planner only reads the facts


def hours(*values: int) -> np.ndarray:
    return START + np.array(values) * np.timedelta64(1, "h")


def file_info(name: str, steps: np.ndarray, features: tuple[str, ...] = FEATURES, lat: np.ndarray = LAT,
              lon: np.ndarray = LON) -> FileInfo:
    return FileInfo(f"/nowhere/{name}", steps, features, lat, lon, units=("K",) * len(features))


def ingest_config(time_chunk: int = 2, **settings) -> IngestConfig:
    return IngestConfig(chunks={"time": time_chunk, "lat": 2, "lon": 4}, **settings)


def facts_of(*inputs: FileInfo, existing: StoreFacts | None = None, aux: dict | None = None,
             skipped: tuple[Skipped, ...] = ()) -> IngestFacts:
    return IngestFacts(STORE, sorted(i.path for i in inputs), list(inputs), list(skipped), aux or {}, existing)


def store_facts(config: IngestConfig, times: np.ndarray, ingested: list[int] | None = None,
                config_json: str | None = None) -> StoreFacts:
    """A store written from files named h<hour>.nc, one step each."""
    layout = StoreLayout(times, FEATURES, LAT, LON, config.chunks.model_dump(), units=("K",) * len(FEATURES))
    files = {t: f"/nowhere/h{(t - START) // np.timedelta64(1, 'h')}.nc" for t in times}
    marks = np.array([1] * len(times) if ingested is None else ingested, np.uint8)
    return StoreFacts(layout, files, marks, recorded_config(config) if config_json is None else config_json)


def spans(plan) -> list[tuple[int, int]]:
    return [(r.t0, r.t1) for r in plan.regions]


def slots(plan) -> list[tuple[int, str, int]]:
    return [(s.t, Path(s.path).name, s.file_step) for r in plan.regions for s in r.slots]


def test_create_plan_lays_out_slots_in_time_order_and_regions_on_the_time_chunk():
    late, early = file_info("b.nc", hours(3, 4, 5)), file_info("a.nc", hours(0, 1, 2))
    plan = plan_ingest(facts_of(late, early), ingest_config(time_chunk=4))
    assert plan.mode == "create" and plan.store == STORE and plan.t_offset == 0 and plan.skipped == []
    assert spans(plan) == [(0, 4), (4, 6)]
    assert slots(plan) == [(0, "a.nc", 0), (1, "a.nc", 1), (2, "a.nc", 2), (3, "b.nc", 0), (4, "b.nc", 1),
                           (5, "b.nc", 2)]
    np.testing.assert_array_equal(plan.layout.times, hours(0, 1, 2, 3, 4, 5))
    assert plan.layout.features == FEATURES and plan.layout.units == ("K", "K")
    assert plan.layout.chunk_shape == (4, 2, 2, 4)
    assert sorted(plan.infos) == ["/nowhere/a.nc", "/nowhere/b.nc"]
    assert "regions   2 to write in 2 task(s)" in plan.describe()
    assert "    t[0:4] <- a.nc, b.nc" in plan.describe()


def test_inputs_off_the_majority_grid_or_features_are_skipped_with_the_reason():
    other_grid = file_info("coarse.nc", hours(2), lat=LAT[:3])
    fewer = file_info("fewer.nc", hours(3), features=("tb-1",))
    plan = plan_ingest(facts_of(file_info("a.nc", hours(0)), file_info("b.nc", hours(1)), other_grid, fewer),
                       ingest_config())
    assert slots(plan) == [(0, "a.nc", 0), (1, "b.nc", 0)]
    assert plan.skipped == [
        Skipped("/nowhere/coarse.nc", "different grid (3x5 vs 4x5 in a.nc); regrid it or ingest it into another store"),
        Skipped("/nowhere/fewer.nc", "different features (missing tb-2); select common variables with --var"),
    ]


def test_scan_skips_come_first_and_nothing_readable_is_an_error_naming_each_file():
    broken = Skipped("/nowhere/broken.nc", "not a NetCDF file")
    plan = plan_ingest(facts_of(file_info("a.nc", hours(0)), skipped=(broken,)), ingest_config())
    assert plan.skipped == [broken]
    with pytest.raises(IngestError) as raised:
        plan_ingest(facts_of(skipped=(broken,)), ingest_config())
    assert str(raised.value) == "no readable input: /nowhere/broken.nc: not a NetCDF file"


def test_a_file_repeating_a_known_time_is_skipped_whole():
    repeat = file_info("repeat.nc", hours(1, 2))
    twice = file_info("twice.nc", hours(7, 7))
    plan = plan_ingest(facts_of(file_info("a.nc", hours(0, 1)), repeat, twice), ingest_config())
    assert slots(plan) == [(0, "a.nc", 0), (1, "a.nc", 1)]
    assert plan.skipped == [
        Skipped("/nowhere/repeat.nc", "duplicate time 2020-01-01T01:00:00.000000000 (already from a.nc); "
                                      "remove one of the two files"),
        Skipped("/nowhere/twice.nc", "duplicate time inside the file (already from itself); "
                                     "remove one of the two files"),
    ]


def test_a_file_repeating_times_of_two_files_names_the_first_repeated_times_file():
    late = file_info("late.nc", hours(0, 3))  # repeats a.nc's 0 h first, then b.nc's 3 h
    plan = plan_ingest(facts_of(file_info("a.nc", hours(0, 1)), file_info("b.nc", hours(2, 3)), late), ingest_config())
    assert plan.skipped == [Skipped("/nowhere/late.nc", "duplicate time 2020-01-01T00:00:00.000000000 "
                                                        "(already from a.nc); remove one of the two files")]


def test_append_lays_out_new_steps_after_the_last_one():
    config = ingest_config()
    existing = store_facts(config, hours(0, 1, 2, 3))
    plan = plan_ingest(facts_of(file_info("c.nc", hours(4, 5)), existing=existing), config, append=True)
    assert plan.mode == "append" and plan.t_offset == 4
    assert spans(plan) == [(4, 6)] and slots(plan) == [(4, "c.nc", 0), (5, "c.nc", 1)]
    np.testing.assert_array_equal(plan.layout.times, hours(4, 5))  # the new steps only: the store grows by them


def test_append_before_the_last_time_or_inside_a_time_chunk_is_refused():
    config = ingest_config()
    with pytest.raises(IngestError) as raised:
        plan_ingest(facts_of(file_info("old.nc", hours(-2)), existing=store_facts(config, hours(0, 1))), config,
                    append=True)
    assert str(raised.value) == ("--append adds time steps after 2020-01-01T01:00:00.000000000, but /nowhere/old.nc "
                                 "holds 2019-12-31T22:00:00.000000000; ingest it into a new store")
    with pytest.raises(IngestError) as raised:
        plan_ingest(facts_of(file_info("d.nc", hours(3, 4)), existing=store_facts(config, hours(0, 1, 2))), config,
                    append=True)
    assert str(raised.value) == ("cannot append at time step 3: not a multiple of the time chunk (2); "
                                 "use ingest.chunks.time=1 for archives that grow")


def test_resume_replans_only_steps_not_yet_flagged_ingested():
    config = ingest_config()
    inputs = [file_info(f"h{h}.nc", hours(h)) for h in range(6)]
    existing = store_facts(config, hours(0, 1, 2, 3, 4, 5), ingested=[1, 1, 1, 0, 1, 1])
    plan = plan_ingest(facts_of(*inputs, existing=existing), config)
    assert plan.mode == "resume" and spans(plan) == [(2, 4)]
    assert slots(plan) == [(2, "h2.nc", 0), (3, "h3.nc", 0)]
    assert plan.layout is existing.layout
    finished = store_facts(config, hours(0, 1, 2, 3, 4, 5))
    assert plan_ingest(facts_of(*inputs, existing=finished), config).regions == []


def test_resume_with_other_inputs_is_refused():
    config = ingest_config()
    existing = store_facts(config, hours(0, 1))
    with pytest.raises(IngestError) as raised:
        plan_ingest(facts_of(file_info("h0.nc", hours(0)), existing=existing), config)
    assert str(raised.value) == (f"{STORE}: a store with a different layout exists (other inputs, variables or "
                                 "chunks); use --append to add files, --overwrite to rebuild, or another --out")


@pytest.mark.parametrize("append", [False, True])
def test_a_changed_config_is_refused_with_the_setting_named(append):
    existing = store_facts(ingest_config(), hours(0, 1), config_json=recorded_config(ingest_config()))
    changed = IngestConfig(chunks={"time": 2, "lat": 8, "lon": 4})
    with pytest.raises(IngestError) as raised:
        plan_ingest(facts_of(file_info("h0.nc", hours(0)), existing=existing), changed, append=append)
    assert str(raised.value) == (f"{STORE}: exists and was written with different ingest settings (chunks.lat: 2 in "
                                 "the store, 8 now); use the same config to resume or append, --overwrite to rebuild, "
                                 "or another --out")


def aux_config(**product) -> IngestConfig:
    return ingest_config(aux_products={"cloud": {"inputs": ["/nowhere/aux_*.nc"], **product}})


def test_aux_product_scenes_are_paired_with_the_primary_steps():
    primary = [file_info("p.nc", hours(0, 6, 12, 18))]
    scenes = FileInfo("/nowhere/aux_a.nc", hours(1, 7, 13), ("cth",), LAT, LON, units=("m",))
    broken = Skipped("/nowhere/aux_bad.nc", "not a NetCDF file")
    aux = {"cloud": ProductFacts([scenes], [(broken.path, broken.reason)])}
    plan = plan_ingest(facts_of(*primary, aux=aux), aux_config(dt_aux="PT3H"))
    assert plan.layout.features == (*FEATURES, "cloud/cth") and plan.layout.units == ("K", "K", "m")
    assert plan.layout.aux_products == ("cloud",)
    [product] = plan.aux
    assert product.dt_hours == 3.0 and not product.dt_inferred
    assert [(s.t, Path(s.scene.path).name, s.scene.file_step) for s in product.slots] == [
        (0, "aux_a.nc", 0), (1, "aux_a.nc", 1), (2, "aux_a.nc", 2)]
    assert [[s.t for s in r.aux] for r in plan.regions] == [[0, 1], [2]]
    assert plan.skipped == [Skipped(broken.path, "auxiliary product cloud: not a NetCDF file")]
    assert "dt_aux 3 h (given): 3 of 4 step(s) mapped" in plan.describe()


def test_an_aux_product_missing_from_the_facts_is_an_error_naming_it():
    with pytest.raises(IngestError) as raised:
        plan_ingest(facts_of(file_info("p.nc", hours(0))), aux_config())
    assert str(raised.value) == ("ingest.aux_products.cloud: the scanned facts hold no scan of this product; "
                                 "scan with the config you plan with")


# The guard: in a fresh interpreter with every way to a file, a store or a NetCDF reader cut off, the
# planner still plans (create, resume, append, an auxiliary product) and imports no reader or cluster.
PURE_PLANNING = textwrap.dedent("""
    import builtins, io, json, os, sys
    import numpy as np
    import xarray, zarr
    from satflow.ingest.options import IngestConfig
    from satflow.ingest.facts import IngestFacts, ProductFacts, StoreFacts
    from satflow.ingest.plan import plan_ingest, recorded_config
    from satflow.sources.base import FileInfo
    from satflow.store import StoreLayout

    lat, lon, start = np.array([0.5, 1.5]), np.array([10.0, 11.0, 12.0]), np.datetime64("2020-01-01T00", "ns")
    times = lambda *h: start + np.array(h) * np.timedelta64(1, "h")
    info = lambda name, t, features=("tb",): FileInfo("/nowhere/" + name, t, features, lat, lon)
    config = IngestConfig(chunks={"time": 2}, aux_products={"cloud": {"inputs": ["/nowhere/aux.nc"], "dt_aux": 3}})
    layout = StoreLayout(times(0, 1), ("tb", "cloud/cth"), lat, lon, config.chunks.model_dump(), units=("", ""),
                         aux_products=("cloud",))
    existing = StoreFacts(layout, {t: "/nowhere/a.nc" for t in times(0, 1)}, np.array([1, 0], np.uint8),
                          recorded_config(config), {"cloud": set()})
    aux = {"cloud": ProductFacts([info("aux.nc", times(0, 2), ("cth",))])}
    primary = [info("a.nc", times(0, 1))]

    def refuse(*args, **kwargs):
        raise AssertionError("the planner did I/O")

    before = set(sys.modules)
    builtins.open = io.open = os.open = os.stat = os.listdir = os.scandir = refuse
    zarr.open = zarr.open_group = zarr.open_array = xarray.open_zarr = xarray.open_dataset = refuse
    for blocked in ("netCDF4", "h5py", "h5netcdf", "distributed", "dask"):
        sys.modules.setdefault(blocked, None)  # an import of it now fails
    plans = [plan_ingest(IngestFacts("", ["/nowhere/a.nc"], primary, [], aux, None), config),
             plan_ingest(IngestFacts("/nowhere/s.zarr", ["/nowhere/a.nc"], primary, [], aux, existing), config),
             plan_ingest(IngestFacts("/nowhere/s.zarr", ["/nowhere/b.nc"], [info("b.nc", times(2, 3))], [], aux,
                                     existing), config, append=True)]
    loaded = sorted(m for m in set(sys.modules) - before if sys.modules[m] is not None)
    print(json.dumps({"plans": [[p.mode, [(r.t0, r.t1, len(r.aux)) for r in p.regions]] for p in plans],
                      "loaded": [m for m in loaded if m.split(".")[0] in ("netCDF4", "h5py", "distributed", "dask")
                                 or m.startswith(("satflow.sources.gridded", "satflow.sources.swath",
                                                  "satflow.sources.regrid", "satflow.runtime"))]}))
""")


def test_the_planner_touches_no_file_store_reader_or_cluster():
    done = subprocess.run([sys.executable, "-c", PURE_PLANNING], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # aux scenes at 0 h and 2 h: both steps 0 and 1 take one; after an append at 2 h only step 2 is new
    assert result["plans"] == [["create", [[0, 2, 2]]], ["resume", [[0, 2, 2]]], ["append", [[2, 4, 1]]]]
    assert result["loaded"] == []


def test_tasks_write_runs_of_consecutive_small_regions_by_bytes_and_leave_gaps_and_large_steps_alone():
    from satflow.ingest.plan import Region, batch_regions

    def region(t0: int, t1: int) -> Region:
        return Region(t0, t1, tuple(Slot(t, START, f"/nowhere/h{t}.nc", 0) for t in range(t0, t1)))

    consecutive = [region(t, t + 1) for t in range(40)]
    merged = batch_regions(consecutive, step_bytes=128, task_bytes=2**20, min_tasks=4)
    assert [(r.t0, r.t1) for r in merged] == [(0, 10), (10, 20), (20, 30), (30, 40)]
    assert [s.t for s in merged[1].slots] == list(range(10, 20))
    by_bytes = batch_regions(consecutive[:6], step_bytes=100, task_bytes=250, min_tasks=1)
    assert [(r.t0, r.t1) for r in by_bytes] == [(0, 2), (2, 4), (4, 6)]
    with_gap = batch_regions([region(0, 1), region(1, 2), region(5, 6), region(6, 7)], 8, 2**20, min_tasks=1)
    assert [(r.t0, r.t1) for r in with_gap] == [(0, 2), (5, 7)]
    large = batch_regions([region(0, 2), region(2, 4)], step_bytes=2**20, task_bytes=2**20, min_tasks=1)
    assert [(r.t0, r.t1) for r in large] == [(0, 2), (2, 4)]


def test_a_plan_of_many_small_steps_writes_them_in_few_tasks():
    plan = plan_ingest(facts_of(*[file_info(f"h{t}.nc", hours(t)) for t in range(64)]), ingest_config(time_chunk=1))
    assert len(plan.regions) == 64
    assert [(r.t0, r.t1) for r in plan.task_regions()] == [(t, t + 4) for t in range(0, 64, 4)]  # MIN_TASKS = 16
    assert "regions   64 to write in 16 task(s)" in plan.describe()


def test_the_lazy_cube_of_a_plan_is_laid_out_without_reading_a_file():
    """`plan_dataset` turns a plan into the lazy cube (satflow.open_archive): dims, chunks, provenance and
    units come from the plan alone; the files (which do not exist) would only be read on compute."""
    from satflow.ingest.cube import plan_dataset

    config = ingest_config()
    plan = plan_ingest(facts_of(file_info("a.nc", hours(0, 1)), file_info("b.nc", hours(2))), config)
    cube = plan_dataset(plan, config.source)
    assert dict(cube.sizes) == {"time": 3, "feature": 2, "lat": 4, "lon": 5}
    assert cube["X"].data.chunksize == (2, 2, 2, 4) and cube["M"].dtype == np.uint8
    assert [str(f) for f in cube["source_file"].values] == ["/nowhere/a.nc", "/nowhere/a.nc", "/nowhere/b.nc"]
    assert cube["units"].values.tolist() == ["K", "K"] and cube["feature"].values.tolist() == list(FEATURES)


def test_coordinates_that_differ_by_float_noise_are_one_grid():
    # files written through float32 and float64 carry the same grid up to ~1e-7: not a different grid
    noisy_lat, noisy_lon = file_info("b.nc", hours(1), lat=LAT + 4e-7), file_info("c.nc", hours(2), lon=LON - 4e-7)
    plan = plan_ingest(facts_of(file_info("a.nc", hours(0)), noisy_lat, noisy_lon), ingest_config())
    assert plan.skipped == [] and slots(plan) == [(0, "a.nc", 0), (1, "b.nc", 0), (2, "c.nc", 0)]


def test_default_chunks_are_the_measured_ones_the_readme_documents():
    # README (Ingest): time 1, all features, lat 384, lon 720: a whole 0.5-degree field per chunk
    layout = plan_ingest(facts_of(file_info("a.nc", hours(0), lat=np.linspace(-90, 90, 361))),
                         IngestConfig()).layout
    assert IngestConfig().chunks.model_dump() == {"time": 1, "feature": -1, "lat": 384, "lon": 720}
    assert layout.chunk_shape == (1, 2, 361, 5)
