"""Ingest end to end on generated AMSU-like files, a real OSTIA file and a corpus of broken files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from satflow.cli import main as cli_main
from satflow.config import load_config
from satflow.ingest import IngestError, plan_ingest, run_ingest, scan_and_plan, scan_ingest
from satflow.ingest.plan import recorded_config
from satflow.runtime.executors import scheduler_workers
from satflow.sources.samples import write_amsua_sample
from satflow.store import STEP_NAMES, open_group

RESOLUTION = 6.0  # 30 x 60 cells: tiny, but the full 40-feature AMSU-A layout


@pytest.fixture(scope="module")
def amsua_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("amsua")
    return write_amsua_sample(out, start="2020-01-01", steps=6, resolution=RESOLUTION, seed=3)


def ingest_config(*overrides: str):
    return load_config(None, ["ingest.chunks.lat=16", "ingest.chunks.lon=32", *overrides]).ingest


def read_arrays(store: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(store), mode="r")
    return {name: np.asarray(array[:]) for name, array in group.arrays()}


def assert_same_store(a: Path, b: Path) -> None:
    left, right = read_arrays(a), read_arrays(b)
    assert sorted(left) == sorted(right)
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)
    attrs_a, attrs_b = dict(zarr.open_group(str(a)).attrs), dict(zarr.open_group(str(b)).attrs)
    assert attrs_a == attrs_b


@pytest.fixture(scope="module")
def clean_store(amsua_files, tmp_path_factory, dask_client) -> Path:
    store = tmp_path_factory.mktemp("clean") / "amsua.zarr"
    report = run_ingest([str(p) for p in amsua_files], store, ingest_config(), client=dask_client, progress=False)
    assert report.skipped == []
    return store


def test_store_contract(clean_store, amsua_files):
    ds = xr.open_zarr(clean_store)
    assert ds["X"].dims == ("time", "feature", "lat", "lon")
    assert ds["X"].dtype == np.float32 and ds["M"].dtype == np.uint8
    assert ds.sizes["time"] == 6 and ds.sizes["feature"] == 40
    features = [str(f) for f in ds["feature"].values]
    assert features[:2] == ["tmbrs-1", "tmbrs-2"] and "tmbrs-15" in features and "hmsl" in features
    assert ds["X"].data.chunksize == (1, 40, 16, 32)
    x = ds["X"].values
    np.testing.assert_array_equal(ds["M"].values, np.isfinite(x).astype(np.uint8))
    assert 0.05 < 1 - np.isfinite(x).mean() < 0.95  # swath gaps exist but do not dominate
    assert [Path(f).name for f in ds["source_file"].values] == [p.name for p in amsua_files]
    assert ds["time"].values[1] - ds["time"].values[0] == np.timedelta64(6, "h")
    assert ds.attrs["satflow_version"] and "chunks" in ds.attrs["satflow_config"]


def test_statistics_equal_numpy(clean_store):
    ds = xr.open_zarr(clean_store)
    x = ds["X"].values.astype(np.float64)
    np.testing.assert_array_equal(ds["count"].values, np.isfinite(x).sum(axis=(0, 2, 3)))
    np.testing.assert_allclose(ds["mean"].values, np.nanmean(x, axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(ds["std"].values, np.nanstd(x, axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_array_equal(ds["min"].values, np.nanmin(x, axis=(0, 2, 3)))
    np.testing.assert_array_equal(ds["max"].values, np.nanmax(x, axis=(0, 2, 3)))


def test_dry_run_prints_plan_and_writes_nothing(amsua_files, tmp_path, capsys):
    store = tmp_path / "never.zarr"
    code = cli_main(["ingest", *map(str, amsua_files), "--out", str(store), "--dry-run"])
    assert code == 0 and not store.exists()
    out = capsys.readouterr().out
    assert "ingest plan (create)" in out and "regions   6 to write" in out and "tmbrs-1" in out


def test_plan_is_plain_data(amsua_files, tmp_path):
    plan = scan_and_plan([str(p) for p in amsua_files], tmp_path / "s.zarr", ingest_config("ingest.chunks.time=4"))
    assert [(r.t0, r.t1) for r in plan.regions] == [(0, 4), (4, 6)]
    assert plan.layout.chunk_shape == (4, 40, 16, 32)
    assert [s.path for s in plan.regions[1].slots] == [str(p) for p in amsua_files[4:]]


def test_rerun_skips_finished_regions_and_matches_clean(amsua_files, clean_store, tmp_path):
    store = tmp_path / "partial.zarr"
    config = ingest_config()
    plan = scan_and_plan([str(p) for p in amsua_files], store, config)
    plan.regions = plan.regions[:2]  # an earlier run that stopped after two regions
    from satflow.ingest import execute_plan

    execute_plan(plan, config, progress=False)
    # ... and a third region whose task died after writing X but before flagging it ingested:
    zarr.open_group(str(store), mode="r+")["X"][2] = 0.0
    resumed = scan_and_plan([str(p) for p in amsua_files], store, config)
    assert resumed.mode == "resume" and [r.t0 for r in resumed.regions] == [2, 3, 4, 5]
    execute_plan(resumed, config, progress=False)
    assert_same_store(store, clean_store)
    again = scan_and_plan([str(p) for p in amsua_files], store, config)
    assert again.regions == []


@pytest.fixture(scope="module")
def long_archive(tmp_path_factory, dask_client) -> tuple[list[Path], Path]:
    """Enough regions (16 files on a 3-degree grid) that a run can be interrupted midway."""
    files = write_amsua_sample(tmp_path_factory.mktemp("long"), start="2020-02-01", steps=16, resolution=3.0, seed=5)
    store = tmp_path_factory.mktemp("long-clean") / "clean.zarr"
    run_ingest([str(p) for p in files], store, ingest_config(), client=dask_client, progress=False)
    return files, store


def _ingested(store: Path) -> np.ndarray:
    if not (store / "ingested" / "zarr.json").exists():
        return np.zeros(0)
    return np.asarray(zarr.open_group(str(store), mode="r")["ingested"][:])


def _wait_for_progress(store: Path, regions: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _ingested(store).sum() < regions:
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.02)


def test_killed_process_then_rerun_matches_clean(tmp_path, long_archive):
    """SIGKILL a real `satflow ingest` midway; the same command again yields the clean store."""
    files, clean = long_archive
    store = tmp_path / "killed.zarr"
    command = ["ingest", *map(str, files), "--out", str(store), "--no-progress",
               "--set", "ingest.chunks.lat=16", "--set", "ingest.chunks.lon=32", "--set", "cluster.local.n_workers=1"]
    process = subprocess.Popen([sys.executable, "-m", "satflow", *command], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_progress(store, 2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    done = _ingested(store)
    assert 2 <= done.sum() < len(done), "the run must have been interrupted midway"
    assert cli_main(command) == 0
    assert_same_store(store, clean)


def test_killed_worker_task_is_retried(tmp_path, long_archive):
    """Kill a worker process while regions run; its tasks are retried and the store is still exact."""
    import threading

    from distributed import Client, LocalCluster

    from satflow.ingest import execute_plan

    files, clean = long_archive
    store = tmp_path / "retried.zarr"
    config = ingest_config()
    plan = scan_and_plan([str(p) for p in files], store, config)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        victim = sorted(scheduler_workers(client))[0]

        async def die() -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        def kill_after_first_region() -> None:
            _wait_for_progress(store, 1)
            client.run(die, workers=[victim], wait=False)

        killer = threading.Thread(target=kill_after_first_region)
        killer.start()
        execute_plan(plan, config, client, progress=False)
        killer.join()
        assert victim not in scheduler_workers(client)
    assert_same_store(store, clean)


def test_append_equals_single_ingest(amsua_files, clean_store, tmp_path):
    store = tmp_path / "appended.zarr"
    config = ingest_config()
    run_ingest([str(p) for p in amsua_files[:4]], store, config, progress=False)
    report = run_ingest([str(p) for p in amsua_files[4:]], store, config, append=True, progress=False)
    assert report.time_steps == 6
    assert_same_store(store, clean_store)


def test_append_before_last_time_is_refused(amsua_files, tmp_path):
    store = tmp_path / "s.zarr"
    run_ingest([str(p) for p in amsua_files[2:4]], store, ingest_config(), progress=False)
    with pytest.raises(IngestError, match="--append adds time steps after 2020-01-01T18"):
        run_ingest([str(amsua_files[0])], store, ingest_config(), append=True, progress=False)


def test_other_settings_on_existing_store_are_refused(amsua_files, tmp_path):
    store = tmp_path / "s.zarr"
    run_ingest([str(p) for p in amsua_files[:2]], store, ingest_config(), progress=False)
    with pytest.raises(IngestError, match=r"different ingest settings \(chunks.lat: 16 in the store, 8 now\)"):
        run_ingest([str(p) for p in amsua_files[:2]], store, ingest_config("ingest.chunks.lat=8"), progress=False)


# Every source setting changes the values or the grid a file is read onto (convert_units alone turned
# kelvin into degC in half of a store); per setting: an override and how the refusal describes it.
SOURCE_CHANGES = {
    "source.variables": ("ingest.source.variables=[tmbrs]", '[] in the store, ["tmbrs"] now'),
    "source.sentinel": ("ingest.source.sentinel=-999", "unset in the store, -999.0 now"),
    "source.convert_units": ("ingest.source.convert_units={tmbrs: degC}", '{} in the store, {"tmbrs": "degC"} now'),
    "source.time_from_filename": (r"ingest.source.time_from_filename=_(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})",
                                  r'"(?P<year>\\d{4})(?P<month>\\d{2})(?P<day>\\d{2})(?:_t(?P<hour>\\d{2}))?" in the store, '
                                  r'"_(?P<year>\\d{4})(?P<month>\\d{2})(?P<day>\\d{2})" now'),
    "source.lon_convention": ("ingest.source.lon_convention=0..360", '"-180..180" in the store, "0..360" now'),
    "source.crop": ("ingest.source.crop.lat_min=-30",
                    'unset in the store, {"lat_max": 90.0, "lat_min": -30.0, "lon_max": 180.0, "lon_min": -180.0} now'),
    "source.kind": ("ingest.source.kind=swath", '"gridded" in the store, "swath" now'),
    "source.swath": ("ingest.source.swath.resolution=2",
                     '{"count_name": "channels", "resolution": 1.0, "window_hours": 6.0, "window_offset_hours": 0.0} '
                     'in the store, {"count_name": "channels", "resolution": 2.0, "window_hours": 6.0, '
                     '"window_offset_hours": 0.0} now'),
    "source.time_selection": ("ingest.source.time_selection.hours=[0]",
                              '{"N_hours_from_zenith": null, "hours": [], "intervals": [], "solar_longitude": null} '
                              'in the store, {"N_hours_from_zenith": null, "hours": [0], "intervals": [], '
                              '"solar_longitude": null} now'),
    "source.derived": ('ingest.source.derived={d: "tmbrs-1 - tmbrs-2"}', '{} in the store, {"d": "tmbrs-1 - tmbrs-2"} now'),
    # A domain needs kind regrid (the config refuses it otherwise), so both settings change and both are named.
    "source.domain": ("ingest.source={kind: regrid, domain: {central_latitude: 10, central_longitude: 20, "
                      "l_zonal: 200000, l_meridional: 100000, resolution: 10000}}",
                      'unset in the store, {"central_latitude": 10.0, "central_longitude": 20.0, "l_meridional": '
                      '100000.0, "l_zonal": 200000.0, "resolution": 10000.0} now; '
                      'source.kind: "gridded" in the store, "regrid" now'),
    "source.regrid": ("ingest.source.regrid.method=nearest", '{"method": "bilinear"} in the store, {"method": "nearest"} now'),
    "source.profiles": ("ingest.source.profiles.max_distance_m=5",
                        '{"accepted_profile_qc": ["1", "A"], "accepted_qc": ["1"], "count_name": "count", "depth_from": '
                        'null, "depths": null, "max_distance_m": 10.0, "names": {"POTM_CORRECTED": "thetao", '
                        '"PSAL_CORRECTED": "so"}, "resample": "linear", "resolution": 2.0, "variables": '
                        '["POTM_CORRECTED"]} in the store, {"accepted_profile_qc": ["1", "A"], "accepted_qc": ["1"], '
                        '"count_name": "count", "depth_from": null, "depths": null, "max_distance_m": 5.0, "names": '
                        '{"POTM_CORRECTED": "thetao", "PSAL_CORRECTED": "so"}, "resample": "linear", "resolution": '
                        '2.0, "variables": ["POTM_CORRECTED"]} now'),
    "source.time_window": ("ingest.source.time_window=P1D", 'unset in the store, "P1D" now'),
    # Centres need the centred anchor (the config refuses them otherwise), so both settings change and both are named.
    "source.time_window_anchor": ("ingest.source.time_window_anchor=centred", 'unset in the store, "centred" now'),
    "source.time_window_centres": ('ingest.source.time_window_centres=["2020-01-01"]', '[] in the store, ["2020-01-01"] now'),
}


def test_every_source_setting_is_covered():
    from satflow.sources.options import SourceConfig

    assert sorted(SOURCE_CHANGES) == sorted(f"source.{name}" for name in SourceConfig.model_fields)


@pytest.fixture(scope="module")
def two_step_store(amsua_files, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("two") / "s.zarr"
    run_ingest([str(p) for p in amsua_files[:2]], store, ingest_config(), progress=False)
    return store


def test_scan_gathers_the_facts_a_pickled_copy_plans_alike(amsua_files, two_step_store):
    """The one I/O step: inputs and the existing store as plain data; planning from a copy gives the same plan."""
    import pickle

    config = ingest_config()
    facts = scan_ingest([str(amsua_files[2])], two_step_store, config)
    assert facts.store == str(two_step_store) and facts.paths == [str(amsua_files[2])]
    assert [i.path for i in facts.inputs] == facts.paths and facts.skipped == [] and facts.aux == {}
    assert facts.existing.ingested.tolist() == [1, 1] and facts.existing.config_json == recorded_config(config)
    assert [Path(f).name for f in facts.existing.files_by_time.values()] == [p.name for p in amsua_files[:2]]
    plan = plan_ingest(facts, config, append=True)
    assert plan.mode == "append" and [(r.t0, r.t1) for r in plan.regions] == [(2, 3)]
    assert plan_ingest(pickle.loads(pickle.dumps(facts)), config, append=True).regions == plan.regions
    assert scan_ingest([str(amsua_files[0])], None, config).existing is None


def _refusal(store: Path, key: str) -> str:
    described = f"{key}: {SOURCE_CHANGES[key][1]}"
    return (f"{store}: exists and was written with different ingest settings ({described}); "
            "use the same config to resume or append, --overwrite to rebuild, or another --out")


@pytest.mark.parametrize("mode", ["resume", "append"])
@pytest.mark.parametrize("key", sorted(SOURCE_CHANGES))
def test_changed_source_setting_is_refused_by_name(amsua_files, two_step_store, key, mode):
    files = amsua_files[:2] if mode == "resume" else amsua_files[2:3]
    config = ingest_config(SOURCE_CHANGES[key][0])
    with pytest.raises(IngestError) as raised:
        run_ingest([str(p) for p in files], two_step_store, config, append=mode == "append", progress=False)
    assert str(raised.value) == _refusal(two_step_store, key)
    assert open_group(str(two_step_store))["X"].shape[0] == 2  # refused before anything was written


def test_cli_append_with_other_units_is_refused(amsua_files, two_step_store, dask_client, capsys):
    args = ["ingest", str(amsua_files[2]), "--out", str(two_step_store), "--append", "--no-progress",
            "--set", "ingest.chunks.lat=16", "--set", "ingest.chunks.lon=32",
            "--set", "ingest.source.convert_units={tmbrs: degC}",
            "--set", "cluster.kind=address", "--set", f"cluster.address={dask_client.scheduler.address}"]
    assert cli_main(args) == 1
    assert _refusal(two_step_store, "source.convert_units") in capsys.readouterr().err
    assert open_group(str(two_step_store))["X"].shape[0] == 2


def _broken_corpus(amsua_files: list[Path], root: Path) -> dict[str, str]:
    """Copies of good files plus one file per failure mode; returns name -> expected reason fragment."""
    import netCDF4

    root.mkdir()
    for path in amsua_files[:3]:
        shutil.copy(path, root / path.name)
    truncated = root / "1bamua_20200102_t00.nc"
    truncated.write_bytes(amsua_files[3].read_bytes()[:2000])
    (root / "1bamua_20200102_t06.nc").write_bytes(os.urandom(4096))
    duplicate = root / "1bamua_20200103_t00.nc"  # same time inside as the first file
    shutil.copy(amsua_files[0], duplicate)
    coarse = write_amsua_sample(root / "coarse", start="2020-01-04", steps=1, resolution=RESOLUTION * 2, seed=1)[0]
    shutil.move(coarse, root / "1bamua_20200104_t00.nc")
    fill = root / "1bamua_20200105_t00.nc"
    write_amsua_sample(root / "fill", start="2020-01-05", steps=1, resolution=RESOLUTION, seed=1)
    shutil.move(root / "fill" / "1bamua_20200105_t00.nc", fill)
    with netCDF4.Dataset(fill, "a") as ds:
        for name, variable in ds.variables.items():
            if {"lat", "lon"} <= set(variable.dimensions):
                variable.set_auto_mask(False)
                variable[:] = variable.getncattr("_FillValue")
    return {
        truncated.name: "",
        "1bamua_20200102_t06.nc": "",
        duplicate.name: "duplicate time",
        "1bamua_20200104_t00.nc": "different grid",
        fill.name: "all values are fill",
    }


def test_broken_inputs_are_reported_and_skipped(amsua_files, tmp_path, capsys):
    expected = _broken_corpus(amsua_files, tmp_path / "corpus")
    store = tmp_path / "s.zarr"
    report_path = tmp_path / "report.json"
    args = ["ingest", str(tmp_path / "corpus"), "--out", str(store), "--no-progress", "--report", str(report_path),
            "--set", "cluster.local.n_workers=1"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert f"{len(expected)} input(s) skipped" in out
    import json

    reported = {Path(item["path"]).name: item["reason"] for item in json.loads(report_path.read_text())}
    assert sorted(reported) == sorted(expected)
    for name, fragment in expected.items():
        assert fragment in reported[name], (name, reported[name])
    ds = xr.open_zarr(store)
    good = {p.name for p in amsua_files[:3]}
    written = {Path(f).name for f in ds["source_file"].values if f}
    assert written == good
    # Nothing already written is lost, and --strict turns the same situation into exit 1.
    assert cli_main([*args, "--strict"]) == 1
    assert {Path(f).name for f in xr.open_zarr(store)["source_file"].values if f} == good


def test_missing_variable_is_reported(amsua_files, tmp_path, capsys):
    code = cli_main(["ingest", str(amsua_files[0]), "--out", str(tmp_path / "s.zarr"), "--var", "nope"])
    assert code == 1
    err = capsys.readouterr().err
    assert "no readable input" in err and amsua_files[0].name in err and "nope" in err


def test_unmatched_glob_names_it(tmp_path, capsys):
    code = cli_main(["ingest", str(tmp_path / "*.nc"), "--out", str(tmp_path / "s.zarr")])
    assert code == 1
    assert f"{tmp_path}/*.nc: no such file or no file matches" in capsys.readouterr().err


def test_real_ostia_file(tmp_path):
    import iris_sample_data

    path = Path(iris_sample_data.path) / "ostia_monthly.nc"
    store = tmp_path / "ostia.zarr"
    report = run_ingest([str(path)], store, ingest_config(), progress=False)
    assert report.skipped == []
    ds = xr.open_zarr(store)
    assert ds.sizes["time"] > 1
    missing = 1 - float(ds["M"].mean())
    assert 0.2 < missing < 0.32  # OSTIA: land and sea ice are missing (about 26%)
    x = ds["X"].values
    np.testing.assert_array_equal(ds["M"].values, np.isfinite(x))
    assert 295 < float(ds["mean"].values[0]) < 305  # tropical-band SST, in kelvin
    assert (ds["lon"].values >= -180).all() and (np.diff(ds["lon"].values) > 0).all()


def test_step_partials_explain_statistics(clean_store):
    group = open_group(clean_store)
    counts = np.asarray(group["step_count"][:])
    assert counts.shape == (6, 40) and all(name in group for name in STEP_NAMES)
    np.testing.assert_array_equal(counts.sum(axis=0), np.asarray(group["count"][:]))


def _tiny_files(folder: Path, count: int) -> tuple[list[Path], np.ndarray]:
    """`count` 6-hourly files of one 4 x 8 step each, with NaN (fill) cells; returns their values."""
    import netCDF4

    folder.mkdir()
    values = np.random.default_rng(7).normal(250.0, 10.0, (count, 4, 8)).astype(np.float32)
    values[values < 242.0] = np.nan
    paths = []
    for i in range(count):
        paths.append(folder / f"tiny_{i:03d}.nc")
        with netCDF4.Dataset(paths[-1], "w") as ds:
            for name, size in (("time", 1), ("lat", 4), ("lon", 8)):
                ds.createDimension(name, size)
            ds.createVariable("time", "f8", ("time",)).setncatts({"units": "hours since 2020-01-01"})
            ds["time"][:] = [6 * i]
            for name, units in (("lat", "degrees_north"), ("lon", "degrees_east")):
                ds.createVariable(name, "f4", (name,)).setncatts({"units": units})
                ds[name][:] = np.arange(ds.dimensions[name].size, dtype=np.float32)
            ds.createVariable("tb", "f4", ("time", "lat", "lon"), fill_value=np.float32(-999.0))
            ds["tb"][:] = np.ma.masked_invalid(values[i:i + 1])
    return paths, values


def test_many_small_files_are_written_in_batched_tasks_with_a_marker_per_step_and_resume(tmp_path):
    paths, values = _tiny_files(tmp_path / "tiny", 40)
    store = tmp_path / "tiny.zarr"
    config = load_config(None, []).ingest
    plan = scan_and_plan([str(p) for p in paths], store, config)
    assert len(plan.regions) == 40 and [(r.t0, r.t1) for r in plan.task_regions()][:2] == [(0, 3), (3, 6)]
    assert len(plan.task_regions()) == 14  # ceil(40 / MIN_TASKS) = 3 steps a task
    report = run_ingest([str(p) for p in paths], store, config, progress=False)
    assert report.written == 40 and report.skipped == [] and set(report.seconds) == {"template", "regions", "finalise"}
    ds = xr.open_zarr(store)
    np.testing.assert_array_equal(ds["X"].values[:, 0], values)
    np.testing.assert_array_equal(ds["M"].values[:, 0], np.isfinite(values).astype(np.uint8))
    np.testing.assert_array_equal(ds["ingested"].values, np.ones(40, np.uint8))
    assert [Path(str(f)).name for f in ds["source_file"].values] == [p.name for p in paths]
    data = values.astype(np.float64)
    assert int(ds["count"].values[0]) == int(np.isfinite(data).sum())
    np.testing.assert_allclose(ds["mean"].values[0], np.nanmean(data), rtol=1e-12)
    np.testing.assert_allclose(ds["std"].values[0], np.nanstd(data), rtol=1e-10)
    assert float(ds["min"].values[0]) == np.nanmin(data) and float(ds["max"].values[0]) == np.nanmax(data)
    fingerprint = open_group(store).attrs["satflow_fingerprint"]

    group = open_group(store, mode="r+")  # a run killed inside the task of steps 3..5
    group["ingested"][4] = 0
    group["X"][4] = np.zeros((1, 4, 8), np.float32)
    resumed = scan_and_plan([str(p) for p in paths], store, config)
    assert resumed.mode == "resume" and [(r.t0, r.t1) for r in resumed.task_regions()] == [(4, 5)]
    run_ingest([str(p) for p in paths], store, config, progress=False)
    np.testing.assert_array_equal(xr.open_zarr(store)["X"].values[4, 0], values[4])
    assert open_group(store).attrs["satflow_fingerprint"] == fingerprint
