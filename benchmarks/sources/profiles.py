"""Profiles per second through the profiles source against the pandas code a user would write.

Data: `write_profiles_sample(floats=3000, steps=3, complevel=0)` (about 9000 EN4-like profiles a month, 139
levels, fill values, bad flags, one Argo-like pressure-only month), onto the 1-degree global grid and
two depth axes: the ocean sample's 5 levels and a GLORYS-like 50-level axis (0.5 .. 1900 m).
- satflow: `read_input` per file, as ingest calls it (NetCDF read, QC, pressure -> depth, compiled
  resampling, rasterisation into the (feature, lat, lon) step);
- reference: the same NetCDF decode and QC in numpy, then what DepthDif-style scripts do: `np.interp`
  per profile (a Python loop), the cell in numpy, a long DataFrame (cell, level, value) and
  `groupby(["cell", "level"]).agg(["mean", "count"])`, scattered onto the grid;
- on the same decoded observations (what differs between the routes: the NetCDF decode is shared):
  cells + compiled resampling + `rasterise` against the np.interp loop + group-by;
- aggregation alone on the same resampled profiles: `rasterise` against the pandas group-by.
Checked equal first (same cells and counts, means within float32 rounding). One thread; rates per
CPU second of this process; medians of 3 alternating repeats; os.getloadavg() is recorded.
    python benchmarks/sources/profiles.py    # writes results/profiles.json (about a minute of CPU)
"""

from __future__ import annotations

import os

for _name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # per-core figures: set before numpy and numba load

import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
GLORYS_LIKE = np.round(np.geomspace(0.5, 1900.0, 50), 2).tolist()


def cpu_seconds(function, *args):
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    result = function(*args)
    return result, time.process_time() - start_cpu, time.perf_counter() - start_wall


def satflow_read(paths, source):
    from satflow.sources.base import read_input, scan_input

    return [read_input(scan_input(str(p), source), source)[0] for p in paths]


def decoded_profiles(path, options):
    """What both routes need from a file: lat, lon, depth (m), values, with QC applied (NaN = rejected)."""
    from satflow.sources.cfvalues import decode_values
    from satflow.sources.rasterise import pressure_to_depth

    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        ds.set_auto_chartostring(False)
        attrs = lambda name: {k: ds[name].getncattr(k) for k in ds[name].ncattrs()}  # noqa: E731
        read = lambda name: decode_values(ds[name][:], attrs(name))  # noqa: E731
        good = lambda name: np.isin(ds[name][:], [b"1"])  # noqa: E731
        lat, lon, juld = read("LATITUDE"), read("LONGITUDE"), read("JULD")
        ok = np.isfinite(juld) & good("POSITION_QC") & good("JULD_QC") & good("PROFILE_POTM_QC")
        values = read("POTM_CORRECTED").astype(np.float64)
        values[~(ok[:, None] & good("POTM_CORRECTED_QC"))] = np.nan
        depth = read("DEPH_CORRECTED").astype(np.float64) if "DEPH_CORRECTED" in ds.variables else \
            np.full(values.shape, np.nan)
        from_pressure = pressure_to_depth(read("PRES").astype(np.float64), lat[:, None])
    return lat, lon, np.where(np.isfinite(depth), depth, from_pressure), values, int(ok.sum())


def pandas_route(paths, source, grid):
    """Decode + QC, np.interp per profile, pandas group-by over (cell, level), scattered onto the grid."""
    return pandas_processing([decoded_profiles(path, source.profiles)[:4] for path in paths], source, grid)


def satflow_processing(decoded, source, grid):
    """The compiled part of `read` on already decoded observations: cells, resampling, rasterisation."""
    from satflow.sources.binning import cell_index
    from satflow.sources.rasterise import rasterise, resample_profiles

    targets = np.asarray(source.profiles.listed_depths)
    steps = []
    for lat, lon, depth, values in decoded:
        means = rasterise(cell_index(lat, lon, grid), resample_profiles(depth, values, targets))
        out = np.full((targets.size + 1, grid.size), np.nan, np.float32)
        out[:-1, means.cells] = means.means.T
        out[-1, means.cells] = np.where(means.profiles > 0, means.profiles, np.nan)
        steps.append(out.reshape(targets.size + 1, grid.lat.size, grid.lon.size))
    return steps


def pandas_processing(decoded, source, grid):
    """np.interp per profile (the loop of a hand-written script), then the pandas group-by."""
    from satflow.sources.binning import cell_index

    targets = np.asarray(source.profiles.listed_depths)
    steps = []
    for lat, lon, depth, values in decoded:
        resampled = np.full((lat.size, targets.size), np.nan, np.float32)
        for p in range(lat.size):  # the per-profile loop of a hand-written script
            ok = np.isfinite(depth[p]) & np.isfinite(values[p])
            z, v = depth[p][ok], values[p][ok]
            if z.size:
                order = np.argsort(z)
                z, v = z[order], v[order]
                inside = (targets >= z[0]) & (targets <= z[-1])
                resampled[p, inside] = np.interp(targets[inside], z, v)
        steps.append(pandas_grid(cell_index(lat, lon, grid), resampled, grid))
    return steps


def pandas_grid(cells, resampled, grid):
    n_levels = resampled.shape[1]
    frame = pd.DataFrame({"cell": np.repeat(cells, n_levels), "level": np.tile(np.arange(n_levels), cells.size),
                          "value": resampled.ravel()}).dropna()
    frame = frame[frame.cell >= 0]
    stats = frame.groupby(["cell", "level"])["value"].agg(["mean", "count"])
    out = np.full((n_levels + 1, grid.size), np.nan, np.float32)
    cell, level = (stats.index.get_level_values(k).to_numpy() for k in (0, 1))
    out[level, cell] = stats["mean"].to_numpy()
    profiles = pd.Series(cells[np.isfinite(resampled).any(axis=1)]).value_counts()
    profiles = profiles[profiles.index >= 0]
    out[n_levels, profiles.index.to_numpy()] = profiles.to_numpy()
    return out.reshape(n_levels + 1, grid.lat.size, grid.lon.size)


def aggregation_inputs(paths, source, grid):
    from satflow.sources.binning import cell_index
    from satflow.sources.rasterise import resample_profiles

    lat, lon, depth, values = (np.concatenate(a) for a in zip(*[decoded_profiles(p, source.profiles)[:4]
                                                               for p in paths]))
    return cell_index(lat, lon, grid), resample_profiles(depth, values, np.asarray(source.profiles.listed_depths))


def compare(name, satflow_steps, pandas_steps):
    for ours, theirs in zip(satflow_steps, pandas_steps):
        assert np.array_equal(np.isfinite(ours), np.isfinite(theirs)), f"{name}: different cells"
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-6, err_msg=name)


def run_axis(label, depths, paths, n_profiles, repeats=3):
    from satflow.config import load_config
    from satflow.sources.binning import target_grid
    from satflow.sources.rasterise import rasterise

    source = load_config(None, ["ingest.source.kind=profiles", "ingest.source.profiles.resolution=1",
                                f"ingest.source.profiles.depths={depths}"]).ingest.source
    grid = target_grid(1.0, source.lon_convention, source.crop)
    compare(label, satflow_read(paths, source), pandas_route(paths, source, grid))  # also warms numba
    decoded = [decoded_profiles(path, source.profiles)[:4] for path in paths]
    compare(label, satflow_processing(decoded, source, grid), pandas_processing(decoded, source, grid))
    cells, resampled = aggregation_inputs(paths, source, grid)
    times = {key: [] for key in ("satflow_read", "pandas_read", "satflow_processing", "pandas_processing",
                                 "satflow_aggregate", "pandas_aggregate")}
    for _ in range(repeats):  # alternate the routes
        for key, call in (("satflow_read", lambda: satflow_read(paths, source)),
                          ("pandas_read", lambda: pandas_route(paths, source, grid)),
                          ("satflow_processing", lambda: satflow_processing(decoded, source, grid)),
                          ("pandas_processing", lambda: pandas_processing(decoded, source, grid)),
                          ("satflow_aggregate", lambda: rasterise(cells, resampled)),
                          ("pandas_aggregate", lambda: pandas_grid(cells, resampled, grid))):
            times[key].append(cpu_seconds(call)[1:])
    med = {key: statistics.median(c for c, _ in values) for key, values in times.items()}
    wall = {key: statistics.median(w for _, w in values) for key, values in times.items()}
    return {"depth_levels": len(depths), "profiles": n_profiles,
            "profiles_with_a_value": int(np.isfinite(resampled).any(1).sum()),
            "cpu_s": med, "wall_s": wall,
            "profiles_per_cpu_s": {key: n_profiles / med[key] for key in med},
            "speedup_read": med["pandas_read"] / med["satflow_read"],
            "speedup_processing": med["pandas_processing"] / med["satflow_processing"],
            "speedup_aggregate": med["pandas_aggregate"] / med["satflow_aggregate"]}


def main() -> None:
    import numba

    from satflow.sources.samples import write_profiles_sample

    numba.set_num_threads(1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_profiles_sample(tmp, floats=3000, steps=3, complevel=0)  # EN4 ships uncompressed NetCDF
        n_profiles = 0
        for path in paths:
            with netCDF4.Dataset(path) as ds:
                n_profiles += ds.dimensions["N_PROF"].size
        results = {label: run_axis(label, depths, paths, n_profiles)
                   for label, depths in (("ocean_sample_5_levels", [0.5, 10.0, 50.0, 100.0, 200.0]),
                                         ("glorys_like_50_levels", GLORYS_LIKE))}
    report = {"benchmark": "profiles source: read + QC + resample + rasterise vs np.interp loop + pandas group-by",
              "files": len(paths), "grid_deg": 1.0, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
              "results": results}
    out = HERE / "results" / "profiles.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    for label, result in results.items():
        print(f"{label}: {result['profiles_per_cpu_s']['satflow_read']:.0f} vs "
              f"{result['profiles_per_cpu_s']['pandas_read']:.0f} profiles/CPU s end to end "
              f"({result['speedup_read']:.1f}x); on decoded observations {result['speedup_processing']:.1f}x; "
              f"aggregation alone {result['speedup_aggregate']:.1f}x")
    print(f"load {load_before} -> {report['loadavg_after']}; wrote {out}")


if __name__ == "__main__":
    main()
