"""Benchmark the sources' compiled paths against the plain-library code a user would write, in one run.

1. Swath binning (`satflow.sources.binning`, what `source.kind: swath` runs per block of scan
   lines): raw AMSU-A swaths from `write_amsua_swath_sample` (5 polar orbiters, 30 FOVs, 15
   channels, fill values decoded to NaN as the swath source does), all observations binned at once
   into mean and count per cell and channel, against a pandas group-by (cell index in numpy, then
   `DataFrame.groupby(cell).agg(["mean", "count"])` over the 15 channel columns). Checked equal
   first. Also the aggregation alone on the same cells, and ingest's own window read (NetCDF decode
   of all 40 features included) for context. One thread (numba, BLAS).
2. Regridding (`satflow.sources.regrid.resample`, what `source.kind: regrid` runs per file) onto a
   Lambert azimuthal equal-area domain, nearest and bilinear, from a regular lat/lon grid (against
   `scipy.interpolate.RegularGridInterpolator`) and from a curvilinear grid given only by its 2-D
   lat/lon (against a `scipy.spatial.cKDTree` nearest node and `scipy.interpolate.griddata`
   linear); both sides start from the domain's configuration (its lat/lon come from pyproj) and
   end with the domain's values. Checked for agreement first.

Rates are per CPU second of this process (one thread), so per core even on shared cores; wall seconds are
in the JSON too. Writes results/sources.json and results/sources.png. About 2 minutes of CPU:
    python benchmarks/sources/run.py            # 12 six-hour windows (2.9 M observations)
    python benchmarks/sources/run.py --quick    # seconds: 1 window, small domain, 1 repeat
"""

from __future__ import annotations

import os

for _name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # per-core figures: set before numpy and numba load

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
CHANNELS = [f"tmbrs-{k}" for k in range(1, 16)]


# --- swath binning -----------------------------------------------------------------------------
def load_observations(paths: list[Path]) -> dict:
    """Every observation's lat, lon and 15 channels (float32, NaN where fill), decoded as the swath source does."""
    from satflow.sources.cfvalues import decode_values

    lat, lon, tb = [], [], []
    for path in paths:
        with netCDF4.Dataset(path) as ds:
            ds.set_auto_maskandscale(False)
            attrs = {key: ds["tmbrs"].getncattr(key) for key in ds["tmbrs"].ncattrs()}
            lat.append(np.asarray(ds["lat"][:], np.float32).ravel())
            lon.append(np.asarray(ds["lon"][:], np.float32).ravel())
            tb.append(decode_values(ds["tmbrs"][:], attrs).reshape(-1, 15))
    return {"lat": np.concatenate(lat), "lon": np.concatenate(lon), "tb": np.ascontiguousarray(np.concatenate(tb))}


def satflow_bin(obs: dict, grid) -> tuple[np.ndarray, np.ndarray]:
    """Means (cell, channel) float32 and counts, as the swath source computes them for a window."""
    from satflow.sources.binning import accumulate_mean, cell_index, finish_mean

    sums, counts = np.zeros((grid.size, 15)), np.zeros((grid.size, 15), np.int32)  # as swath._WindowBins
    accumulate_mean(cell_index(obs["lat"], obs["lon"], grid), obs["tb"], sums, counts)
    return finish_mean(sums, counts), counts


def satflow_aggregate(cells: np.ndarray, values: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    from satflow.sources.binning import accumulate_mean, finish_mean

    sums, counts = np.zeros((n_cells, 15)), np.zeros((n_cells, 15), np.int32)
    accumulate_mean(cells, values, sums, counts)
    return finish_mean(sums, counts), counts


def pandas_cells(lat: np.ndarray, lon: np.ndarray, resolution: float) -> np.ndarray:
    """The cell index as a user writes it: rows from -90 (90 N in the last row), columns from -180, wrapped."""
    n_rows, n_cols = round(180 / resolution), round(360 / resolution)
    row = np.clip(np.floor((lat.astype(np.float64) + 90.0) / resolution), 0, n_rows - 1).astype(np.int64)
    col = np.floor(np.mod(lon.astype(np.float64) + 180.0, 360.0) / resolution).astype(np.int64) % n_cols
    return row * n_cols + col


def pandas_aggregate(cells: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=CHANNELS)
    frame["cell"] = cells
    return frame.groupby("cell").agg(["mean", "count"])


def pandas_bin(obs: dict, resolution: float) -> pd.DataFrame:
    return pandas_aggregate(pandas_cells(obs["lat"], obs["lon"], resolution), obs["tb"])


def check_binning(satflow: tuple[np.ndarray, np.ndarray], reference: pd.DataFrame) -> dict:
    """Same counts everywhere, same means to float32 rounding; raises when they differ."""
    means, counts = satflow
    cells = reference.index.to_numpy()
    ref_means = reference.xs("mean", axis=1, level=1)[CHANNELS].to_numpy(np.float64)
    ref_counts = reference.xs("count", axis=1, level=1)[CHANNELS].to_numpy(np.int64)
    np.testing.assert_array_equal(counts[cells], ref_counts)
    assert counts.sum() == ref_counts.sum(), "satflow counted observations in cells the group-by never saw"
    np.testing.assert_allclose(means[cells], ref_means, rtol=2e-7, atol=0, equal_nan=True)
    return {"cells_observed": int(cells.size), "valid_values": int(ref_counts.sum()),
            "max_abs_mean_difference_K": float(np.nanmax(np.abs(means[cells] - ref_means)))}


def alternate(runs: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """CPU and wall seconds of each callable per repeat, taking turns so that all see the same machine load.

    Rates per core come from CPU seconds (this process, all its threads): on cores shared with other jobs the
    wall clock also counts the time the scheduler gave to them."""
    cpu, wall = {name: [] for name in runs}, {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started_cpu, started = time.process_time(), time.perf_counter()
            run()
            cpu[name].append(time.process_time() - started_cpu)
            wall[name].append(time.perf_counter() - started)
    return cpu, wall


def bench_binning(obs: dict, resolution: float, repeats: int) -> dict:
    from satflow.sources.binning import cell_index, target_grid

    grid = target_grid(resolution)
    n = obs["lat"].size
    small = {key: value[:100] for key, value in obs.items()}
    satflow_bin(small, grid)  # numba compiles (or loads its cache) before the clock runs
    agreement = check_binning(satflow_bin(obs, grid), pandas_bin(obs, resolution))
    cells = cell_index(obs["lat"], obs["lon"], grid)
    np.testing.assert_array_equal(cells, pandas_cells(obs["lat"], obs["lon"], resolution))
    seconds, wall = alternate({
        "satflow": lambda: satflow_bin(obs, grid),
        "pandas": lambda: pandas_bin(obs, resolution),
        "satflow_aggregate_only": lambda: satflow_aggregate(cells, obs["tb"], grid.size),
        "pandas_aggregate_only": lambda: pandas_aggregate(cells, obs["tb"]),
    }, repeats)
    rate = {name: n / statistics.median(s) for name, s in seconds.items()}
    return {"resolution_deg": resolution, "cells": grid.size, "observations": n, "agreement": agreement,
            "cpu_seconds": seconds, "wall_seconds": wall, "observations_per_s": rate,
            "speedup": rate["satflow"] / rate["pandas"],
            "speedup_aggregate_only": rate["satflow_aggregate_only"] / rate["pandas_aggregate_only"]}


def bench_window_reads(paths: list[Path], resolution: float, windows: int) -> dict:
    """Ingest's own read of the first six-hour windows (NetCDF decode, 40 features): context, not a target."""
    from satflow.config import load_config
    from satflow.sources.base import INPUT_SEPARATOR, group_inputs, read_input, scan_input

    source = load_config(None, ["ingest.source.kind=swath",
                                f"ingest.source.swath.resolution={resolution}"]).ingest.source
    inputs, skipped = group_inputs([scan_input(str(p), source) for p in paths], source)
    assert not skipped, skipped
    inputs = inputs[:windows]
    started_cpu, started = time.process_time(), time.perf_counter()
    for info in inputs:
        read_input(info, source)
    seconds, wall = time.process_time() - started_cpu, time.perf_counter() - started
    n = sum(observations_in_window(info.path.split(INPUT_SEPARATOR), info.times[0]) for info in inputs)
    return {"resolution_deg": resolution, "windows": len(inputs), "observations": n, "cpu_seconds": seconds,
            "wall_seconds": wall, "observations_per_s": n / seconds}


def observations_in_window(paths: list[str], centre: np.datetime64) -> int:
    """Observations of the sample's files inside [centre - 3 h, centre + 3 h)."""
    half = np.timedelta64(3, "h")
    n = 0
    for path in paths:
        with netCDF4.Dataset(path) as ds:
            assert ds["time"].units == "seconds since 2000-01-01 00:00:00", ds["time"].units
            times = np.datetime64("2000-01-01", "ns") + (ds["time"][:].ravel() * 1e9).astype("timedelta64[ns]")
        n += int(np.count_nonzero((times >= centre - half) & (times < centre + half)))
    return n


# --- regridding --------------------------------------------------------------------------------
def smooth_field(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return (280.0 + 10.0 * np.sin(np.radians(3 * lat)) * np.cos(np.radians(2 * lon))).astype(np.float32)


def with_gaps(values: np.ndarray, seed: int) -> np.ndarray:
    """1% of the input invalid (NaN), so that both sides must carry masks."""
    out = values.copy()
    out[np.random.default_rng(seed).random(out.shape) < 0.01] = np.nan
    return out


def write_regular(path: Path, lat: np.ndarray, lon: np.ndarray, values: np.ndarray) -> None:
    with netCDF4.Dataset(path, "w") as ds:
        for name, axis, std, units in (("lat", lat, "latitude", "degrees_north"),
                                       ("lon", lon, "longitude", "degrees_east")):
            ds.createDimension(name, axis.size)
            variable = ds.createVariable(name, "f8", (name,))
            variable.setncatts({"standard_name": std, "units": units})
            variable[:] = axis
        ds.createDimension("time", 1)
        time_var = ds.createVariable("time", "f8", ("time",))
        time_var.units = "hours since 2020-01-01"
        time_var[:] = [0.0]
        tb = ds.createVariable("tb", "f4", ("time", "lat", "lon"), fill_value=np.float32(-999))
        tb.units = "K"
        tb[:] = np.ma.masked_invalid(values[None])


def write_curvilinear(path: Path, lat2d: np.ndarray, lon2d: np.ndarray, values: np.ndarray) -> None:
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("j", lat2d.shape[0])
        ds.createDimension("i", lat2d.shape[1])
        for name, array, std, units in (("nav_lat", lat2d, "latitude", "degrees_north"),
                                        ("nav_lon", lon2d, "longitude", "degrees_east")):
            variable = ds.createVariable(name, "f8", ("j", "i"))
            variable.setncatts({"standard_name": std, "units": units})
            variable[:] = array
        time_var = ds.createVariable("time", "f8", ())
        time_var.units = "hours since 2020-01-01"
        time_var.assignValue(0.0)
        tb = ds.createVariable("tb", "f4", ("j", "i"), fill_value=np.float32(-999))
        tb.setncatts({"units": "K", "coordinates": "time nav_lat nav_lon"})
        tb[:] = np.ma.masked_invalid(values)


def curvilinear_nodes(domain_config, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """2-D lat/lon of a polar stereographic grid (SEVIRI's scene projection) covering the domain and a margin."""
    import pyproj

    from satflow.sources.domain import DomainGrid

    stereo = pyproj.CRS.from_cf({"grid_mapping_name": "polar_stereographic", "straight_vertical_longitude_from_pole":
                                 -35.0, "latitude_of_projection_origin": 90.0, "standard_parallel": 60.0})
    lat, lon = DomainGrid.from_config(domain_config).lat_lon_2d
    x, y = pyproj.Transformer.from_crs(stereo.geodetic_crs, stereo, always_xy=True).transform(lon, lat)
    margin = 5 * spacing
    xs = np.arange(x.min() - margin, x.max() + margin, spacing)
    ys = np.arange(y.max() + margin, y.min() - margin, -spacing)  # north-up rows, as scenes store them
    node_lon, node_lat = pyproj.Transformer.from_crs(stereo, stereo.geodetic_crs, always_xy=True).transform(
        *np.meshgrid(xs, ys))
    return np.asarray(node_lat), np.asarray(node_lon)


def domain_grid(domain):
    """A DomainConfig builds its grid (pyproj maps every cell centre to lat/lon); a DomainGrid has them cached."""
    from satflow.sources.domain import DomainGrid
    from satflow.sources.options import DomainConfig

    return DomainGrid.from_config(domain) if isinstance(domain, DomainConfig) else domain


def scipy_regular(lat, lon, values, domain, method: str) -> np.ndarray:
    from scipy.interpolate import RegularGridInterpolator

    target_lat, target_lon = domain_grid(domain).lat_lon_2d
    interpolator = RegularGridInterpolator((lat, lon), values, method="linear" if method == "bilinear" else method,
                                           bounds_error=False, fill_value=np.nan)
    return interpolator((target_lat, target_lon)).astype(np.float32)


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(lat.ravel()), np.radians(lon.ravel())
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def scipy_curvilinear(node_lat, node_lon, values, domain, method: str) -> np.ndarray:
    """Nearest: the nearest node on the sphere (cKDTree of unit vectors); bilinear: Delaunay-linear (griddata) in
    the domain's plane. Targets farther than a node spacing from every node are outside (NaN)."""
    import pyproj
    from scipy.interpolate import griddata
    from scipy.spatial import cKDTree

    domain = domain_grid(domain)
    target_lat, target_lon = domain.lat_lon_2d
    if method == "nearest":
        nodes = _unit_vectors(node_lat, node_lon)
        distance, nearest = cKDTree(nodes).query(_unit_vectors(target_lat, target_lon))
        spacing = np.median(np.linalg.norm(np.diff(nodes.reshape(*node_lat.shape, 3), axis=1), axis=-1))
        out = np.where(distance <= spacing, values.ravel()[nearest], np.nan)
        return out.reshape(target_lat.shape).astype(np.float32)
    to_plane = pyproj.Transformer.from_crs(domain.crs.geodetic_crs, domain.crs, always_xy=True)
    x, y = to_plane.transform(node_lon, node_lat)
    points = np.column_stack([np.ravel(x), np.ravel(y)])
    targets = tuple(np.meshgrid(domain.x, domain.y))
    return griddata(points, values.ravel(), targets, method="linear").astype(np.float32)


def satflow_regrid(plan, values: np.ndarray, domain, method: str) -> np.ndarray:
    from satflow.sources.regrid import resample

    return resample(values[None, None], plan, domain_grid(domain), method)[0, 0]


def compare_regrid(ours: np.ndarray, reference: np.ndarray) -> dict:
    both = np.isfinite(ours) & np.isfinite(reference)
    return {"cells": int(ours.size), "valid_satflow": int(np.isfinite(ours).sum()),
            "valid_reference": int(np.isfinite(reference).sum()), "valid_both": int(both.sum()),
            "equal_fraction": float(np.mean(ours[both] == reference[both])) if both.any() else 0.0,
            "max_abs_difference_K": float(np.abs(ours[both] - reference[both]).max()) if both.any() else None}


def check_regrid(input_kind: str, method: str, agreement: dict) -> None:
    """Refuse to time results that disagree. On a regular grid both sides compute the same interpolant (bilinear
    differs by float32 rounding: satflow weighs in float32, scipy in float64). On a curvilinear grid satflow's
    nearest is the input cell its position falls in, the reference's the nearest node on the sphere (they differ
    near cell diagonals), and griddata is linear on triangles, which three valid corners suffice for."""
    valid = agreement["valid_both"]
    if input_kind == "regular lat/lon":
        assert agreement["valid_satflow"] == agreement["valid_reference"] == valid, agreement
        assert agreement["equal_fraction"] == 1.0 if method == "nearest" else \
            agreement["max_abs_difference_K"] <= 1e-4, agreement
    elif method == "nearest":
        assert valid >= 0.99 * agreement["valid_reference"] and agreement["equal_fraction"] >= 0.99, agreement
    else:
        assert valid >= 0.95 * agreement["valid_reference"] and agreement["max_abs_difference_K"] <= 1e-3, agreement


def bench_regrid(tmp: Path, domain_config, spacing_deg: float, repeats: int) -> list[dict]:
    from satflow.sources.base import scan_input
    from satflow.sources.domain import DomainGrid
    from satflow.sources.options import SourceConfig

    domain = DomainGrid.from_config(domain_config)
    lat2d, lon2d = domain.lat_lon_2d
    lat = np.arange(np.floor(lat2d.min()) - 1, np.ceil(lat2d.max()) + 1, spacing_deg)
    lon = np.arange(np.floor(lon2d.min()) - 1, np.ceil(lon2d.max()) + 1, spacing_deg)
    regular = with_gaps(smooth_field(*np.meshgrid(lat, lon, indexing="ij")), 1)
    write_regular(tmp / "regular.nc", lat, lon, regular)
    node_lat, node_lon = curvilinear_nodes(domain_config, spacing_deg * 111_000.0)
    curvilinear = with_gaps(smooth_field(node_lat, node_lon), 2)
    write_curvilinear(tmp / "curvilinear.nc", node_lat, node_lon, curvilinear)
    results = []
    for input_kind, path, values, reference in (
            ("regular lat/lon", "regular.nc", regular, lambda m: scipy_regular(lat, lon, regular, domain_config, m)),
            ("curvilinear", "curvilinear.nc", curvilinear,
             lambda m: scipy_curvilinear(node_lat, node_lon, curvilinear, domain_config, m))):
        for method in ("nearest", "bilinear"):
            plan = scan_input(str(tmp / path), SourceConfig(kind="regrid", domain=domain_config,
                                                            regrid={"method": method})).read_plan
            ours, theirs = satflow_regrid(plan, values, domain_config, method), reference(method)
            agreement = compare_regrid(ours, theirs)
            check_regrid(input_kind, method, agreement)
            agreement["max_abs_error_vs_analytic_K"] = {
                name: float(np.nanmax(np.abs(out - smooth_field(lat2d, lon2d))))
                for name, out in (("satflow", ours), ("reference", theirs))}
            runs = {"satflow": lambda: satflow_regrid(plan, values, domain_config, method),
                    "reference": lambda: reference(method)}
            if input_kind == "regular lat/lon":  # pyproj's cell-centre lat/lon (shared by both) computed once
                runs["satflow_given_domain"] = lambda: satflow_regrid(plan, values, domain, method)
                runs["reference_given_domain"] = lambda: scipy_regular(lat, lon, regular, domain, method)
            seconds, wall = alternate(runs, repeats)
            rate = {name: domain.x.size * domain.y.size / statistics.median(s) for name, s in seconds.items()}
            results.append({"input": input_kind, "method": method, "input_shape": list(values.shape),
                            "domain_shape": [domain.y.size, domain.x.size],
                            "reference": ("RegularGridInterpolator" if input_kind == "regular lat/lon" else
                                          "cKDTree nearest node" if method == "nearest" else "griddata linear"),
                            "agreement": agreement, "cpu_seconds": seconds, "wall_seconds": wall, "cells_per_s": rate,
                            "speedup": rate["satflow"] / rate["reference"],
                            **({"speedup_given_domain": rate["satflow_given_domain"] / rate["reference_given_domain"]}
                               if "satflow_given_domain" in rate else {})})
    return results


# --- report ------------------------------------------------------------------------------------
def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 1.4]})
    labels, ours, theirs = [], [], []
    for run in results["binning"]:
        for suffix, label in (("", "end to end"), ("_aggregate_only", "aggregation")):
            labels.append(f"{run['resolution_deg']:g}°\n{label}")
            ours.append(run["observations_per_s"][f"satflow{suffix}"] / 1e6)
            theirs.append(run["observations_per_s"][f"pandas{suffix}"] / 1e6)
    _bars(left, labels, ours, theirs, "pandas group-by")
    left.axhline(10, color="C3", ls="--", lw=1, label="target 10 M/s per core")
    left.set_ylabel("million observations / s (1 core)")
    left.set_title(f"swath binning, 15 channels, {results['binning'][0]['observations'] / 1e6:.1f} M observations")
    left.legend(fontsize=8)
    labels, ours, theirs = [], [], []
    for run in results["regrid"]:
        labels.append(f"{run['input']}\n{run['method']}")
        ours.append(run["cells_per_s"]["satflow"] / 1e6)
        theirs.append(run["cells_per_s"]["reference"] / 1e6)
    _bars(right, labels, ours, theirs, "scipy")
    shape = results["regrid"][0]["domain_shape"]
    right.set_ylabel("million domain cells / s (1 core)")
    right.set_title(f"regridding onto a {shape[0]} x {shape[1]} LAEA domain")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _bars(ax, labels, ours, theirs, reference_name: str) -> None:
    from matplotlib.ticker import FuncFormatter

    x = np.arange(len(labels))
    ax.bar(x - 0.2, ours, 0.4, label="satflow", color="C0")
    ax.bar(x + 0.2, theirs, 0.4, label=reference_name, color="grey")
    for xi, a, b in zip(x, ours, theirs):
        ax.annotate(f"{a / b:.1f}x", (xi - 0.2, a), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}" if f"{value:g}"[0] in "25" else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (1 window, small domain)")
    parser.add_argument("--steps", type=int, default=12, help="six-hour windows of swaths (about 240k observations each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 1, 1

    import numba

    from satflow.sources.options import DomainConfig
    from satflow.sources.samples import write_amsua_swath_sample
    from satflow.version import __version__

    numba.set_num_threads(1)
    extent = 600_000.0 if args.quick else 2_000_000.0
    domain = DomainConfig(central_latitude=50.0, central_longitude=-5.0, l_zonal=extent, l_meridional=0.75 * extent,
                          resolution=5_000.0)
    with tempfile.TemporaryDirectory(prefix="satflow-sources-bench-") as tmp:
        tmp = Path(tmp)
        paths = write_amsua_swath_sample(tmp / "swaths", steps=args.steps)
        obs = load_observations(paths)
        results = {
            "setup": {"steps": args.steps, "repeats": args.repeats, "quick": args.quick, "swath_files": len(paths),
                      "satflow": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
                      "pandas": pd.__version__, "numba": numba.__version__, "threads": numba.get_num_threads(),
                      "cpus": os.cpu_count(), "machine": platform.machine(),
                      "domain": domain.model_dump(), "command": " ".join(["python", "benchmarks/sources/run.py",
                                                                          *(argv or sys.argv[1:])])},
            "binning": [bench_binning(obs, resolution, args.repeats) for resolution in (1.0, 0.25)],
            "window_reads": bench_window_reads(paths, 1.0, windows=1 if args.quick else 2),
            "regrid": bench_regrid(tmp, domain, 0.05, args.repeats),
        }
    import scipy

    results["setup"]["scipy"] = scipy.__version__
    main_run = results["binning"][0]
    results["targets"] = {"binning_at_least_5x_pandas": main_run["speedup"] >= 5.0,
                          "binning_at_least_10M_obs_per_s_per_core": main_run["observations_per_s"]["satflow"] >= 1e7}
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "sources.png")
    (args.out / "sources.json").write_text(json.dumps(results, indent=2))
    summarize(results)
    print(f"wrote {args.out / 'sources.json'} and {args.out / 'sources.png'}")
    return 0


def summarize(results: dict) -> None:
    for run in results["binning"]:
        rate = run["observations_per_s"]
        print(f"binning {run['resolution_deg']:g} deg, {run['observations'] / 1e6:.2f} M obs: satflow "
              f"{rate['satflow'] / 1e6:.1f} M/s, pandas {rate['pandas'] / 1e6:.2f} M/s -> {run['speedup']:.1f}x "
              f"(aggregation only: {run['speedup_aggregate_only']:.1f}x)")
    reads = results["window_reads"]
    print(f"ingest window reads ({reads['windows']}, NetCDF + binning, 40 features): "
          f"{reads['observations_per_s'] / 1e6:.2f} M obs/s")
    for run in results["regrid"]:
        print(f"regrid {run['input']:16s} {run['method']:8s}: satflow {run['cells_per_s']['satflow'] / 1e6:.2f} M "
              f"cells/s, {run['reference']} {run['cells_per_s']['reference'] / 1e6:.2f} -> {run['speedup']:.2f}x; "
              f"agreement {run['agreement']['equal_fraction']:.4f} equal, max diff "
              f"{run['agreement']['max_abs_difference_K']:.2g} K"
              + (f"; domain lat/lon given: {run['speedup_given_domain']:.2f}x" if "speedup_given_domain" in run else ""))
    print("targets:", results["targets"])


if __name__ == "__main__":
    raise SystemExit(main())
