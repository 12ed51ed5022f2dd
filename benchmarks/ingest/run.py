"""Ingest benchmark: whole commands as a user runs them (process start to exit), at default settings.

Routes, all in the same run, in alternating order from round to round:
- `satflow`: `python -m satflow ingest FILES --out S [--var tmbrs]` (its own cluster, scan, plan,
  region tasks, statistics, finalise, close)
- `xarray`: `xr.open_mfdataset(files).to_zarr(out)` at xarray's and zarr's defaults, in a fresh process
  (for the tiny-file archive its tuned form: `combine="nested", data_vars="minimal", coords="minimal",
  compat="override"`)
- `floor`: two hand-written Python processes started together, each reading half the files with netCDF4
  (masked -> NaN) and writing X and M (satflow's default chunks and codec) into one Zarr store: no
  planning, statistics, provenance or cluster

Archives: AMSU-like 0.5-degree files (`tmbrs`, 15 x 361 x 720 per step, zlib 4) at two sizes (default 40
and 160), the per-file slope between them, and the store sizes; 2,000 tiny files (one 4 x 8 step each)
with the rate of `satflow ingest --dry-run`; the 0.25-degree 40-feature product at two small sizes.
Beside each satflow figure: its phases in one in-process run of `ingest_job` as the CLI runs it (imports,
scan + plan while the cluster starts, template, regions, finalise from `IngestReport.seconds`, then the wait
for the workers and the close) and peak memory.

Before every route the script waits (up to 90 s) for the 1-minute load left by the previous route to
decay to 2.0, then records `os.getloadavg()`; a round in which a route starts above --max-load (2.5: on
2 cores every route waits on the same stolen cores above that) is kept in the JSON but marked dropped
and left out of the summary. Each route also records `cpu_probe_s` (a fixed Python loop timed just before
it: the load average misses a host that slows every core at once). Ratios and slopes come from rounds kept
in this run only; the summary gives them from each route's best and, per round, from routes that ran
minutes apart.

    python benchmarks/ingest/run.py --data /tmp/satflow-bench-data   # full run -> results/ingest.json
    python benchmarks/ingest/run.py --quick                          # smoke run: tiny archives, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from quiet import cpu_probe, settled_load  # noqa: E402  (benchmarks/quiet.py)
ROOT = HERE.parent.parent
WORKERS = 2  # the floor's processes; the cluster keeps its default


# --- child processes (what the routes run) ---------------------------------------------------------
def floor_child(store: str, part: int, parts: int, files: list[str], variables: list[str]) -> None:
    """One of the floor's processes: files[part::parts] -> X and M time steps of one shared store."""
    import netCDF4
    import numpy as np
    import zarr

    from satflow.ingest.options import ChunkConfig

    with netCDF4.Dataset(files[0]) as first:
        names = variables or [n for n, v in first.variables.items()
                              if {"lat", "lon"} <= set(v.dimensions) and n not in ("lat", "lon")]
        n_lat, n_lon = len(first.dimensions["lat"]), len(first.dimensions["lon"])
        n_feature = sum(int(np.prod(first.variables[n].shape[1:-2])) for n in names)
    shape = (len(files), n_feature, n_lat, n_lon)
    defaults = ChunkConfig()
    chunks = (1, n_feature, min(defaults.lat, n_lat), min(defaults.lon, n_lon))
    group = zarr.open_group(store, mode="a", zarr_format=3)
    arrays = [_shared_array(group, name, shape, chunks, dtype, fill) for name, dtype, fill in
              (("X", "f4", np.nan), ("M", "u1", 0))]
    for t in range(part, len(files), parts):
        with netCDF4.Dataset(files[t]) as ds:
            block = np.concatenate([np.ma.filled(ds.variables[n][0], np.nan).astype(np.float32).reshape(-1, n_lat, n_lon)
                                    for n in names])
        arrays[0][t] = block
        arrays[1][t] = np.isfinite(block)


def _shared_array(group, name, shape, chunks, dtype, fill):
    """Both floor processes create the same array; whichever comes second opens it."""
    from satflow.store import compressor

    try:
        return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                                  compressors=[compressor()])
    except Exception:  # noqa: BLE001 - zarr raises ContainsArrayError (or a FileExistsError) when it exists
        time.sleep(0.05)
        return group[name]


def xarray_child(store: str, files: list[str], variables: list[str], tuned: bool) -> None:
    import xarray as xr

    options = dict(combine="nested", concat_dim="time", data_vars="minimal", coords="minimal",
                   compat="override") if tuned else {}
    ds = xr.open_mfdataset(files, **options)
    if variables:
        ds = ds[variables]
    ds.to_zarr(store, mode="w", zarr_format=3, consolidated=False)


def phases_child(store: str, files: list[str], variables: list[str]) -> dict:
    """The satflow command's phases, in one process running `ingest_job` as the CLI does: the cluster
    starts in the background while this process scans and plans; the template is written before
    waiting on the workers."""
    started = time.perf_counter()
    from satflow.config import load_config
    from satflow.ingest.job import ingest_job

    overrides = [f"ingest.source.variables={json.dumps(variables)}"] if variables else []
    config = load_config(None, overrides)
    seconds = {"imports": time.perf_counter() - started}
    marks: dict = {}
    mark = time.perf_counter()
    job = ingest_job(files, store, config.ingest, config.cluster, progress=False,
                     on_plan=lambda plan: marks.setdefault("planned", time.perf_counter()))
    ended = time.perf_counter()
    seconds["scan_plan_while_cluster_starts"] = marks["planned"] - mark
    seconds.update(job.report.seconds)  # template, regions, finalise
    seconds["cluster_wait_and_close"] = (ended - marks["planned"]) - sum(job.report.seconds.values())
    seconds["total_in_process"] = ended - started
    return {key: round(value, 3) for key, value in seconds.items()}


# --- timing whole commands -------------------------------------------------------------------------
class PeakRSS:
    """Peak summed resident memory of the given processes and all their descendants (20 ms samples)."""

    def __init__(self, processes):
        import psutil

        self.roots = [psutil.Process(p.pid) for p in processes]
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        total = 0
        for root in self.roots:
            try:
                for process in [root, *root.children(recursive=True)]:
                    total += process.memory_info().rss
            except Exception:  # noqa: BLE001 - a process that just exited
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_commands(commands: list[list[str]]) -> dict:
    """Start the commands together; seconds from the first start to the last exit, and peak memory."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.perf_counter()
    processes = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for c in commands]
    memory = PeakRSS(processes)
    outputs = [p.communicate()[0] for p in processes]
    seconds = time.perf_counter() - started
    peak = memory.stop()
    for process, output in zip(processes, outputs):
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(commands[0][:4])} ... exited {process.returncode}:\n{output[-3000:]}")
    return {"seconds": round(seconds, 3), "peak_rss_mib": round(peak / 2**20, 1)}


def route_commands(route: str, files: list[str], store: str, variables: list[str], tuned: bool) -> list[list[str]]:
    var_flags = [a for v in variables for a in ("--var", v)]
    if route == "satflow":
        return [[sys.executable, "-m", "satflow", "ingest", *files, "--out", store, "--no-progress", *var_flags]]
    listing = str(Path(store).with_suffix(".files.json"))
    Path(listing).write_text(json.dumps({"files": files, "variables": variables}))
    me = [sys.executable, str(Path(__file__).resolve())]
    if route == "xarray":
        return [[*me, "--child", "xarray", "--store", store, "--listing", listing, *(["--tuned"] if tuned else [])]]
    return [[*me, "--child", "floor", "--store", store, "--listing", listing, "--part", str(k), "--parts", str(WORKERS)]
            for k in range(WORKERS)]


def du(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, names in os.walk(path) for f in names)


ROUTES = ("satflow", "xarray", "floor")


def bench_sizes(name: str, archives: dict[int, list[str]], variables: list[str], work: Path, rounds: int,
                max_load: float, tuned: bool = False) -> dict:
    """Every route on every archive size, `rounds` times, in a rotated order each round."""
    result: dict = {"variables": variables or "all", "rounds": []}
    for k in range(rounds):
        round_ = {"dropped": False, "runs": {}}
        order = ROUTES[k % 3:] + ROUTES[:k % 3]
        for n, files in archives.items():
            for route in order:
                store = work / f"{name}-{route}-{n}.zarr"
                shutil.rmtree(store, ignore_errors=True)
                load = settled_load()
                round_["dropped"] |= load[0] > max_load
                probe = cpu_probe()
                run = run_commands(route_commands(route, files, str(store), variables, tuned))
                run["load_before"] = [round(v, 2) for v in load]
                run["cpu_probe_s"] = round(probe, 3)
                run["store_mib"] = round(du(store) / 2**20, 2)
                round_["runs"][f"{route}_{n}"] = run
                print(f"  {name} round {k} load {load[0]:.1f} probe {probe:.2f} s {route:8s} {n:5d} files {run['seconds']:7.2f} s "
                      f"peak {run['peak_rss_mib']:6.0f} MiB store {run['store_mib']:8.1f} MiB", flush=True)
                shutil.rmtree(store, ignore_errors=True)
        result["rounds"].append(round_)
    result["phases"] = {n: measure_phases(files, variables, work / f"{name}-phases.zarr") for n, files in archives.items()}
    result["summary"] = summarize(result["rounds"], list(archives))
    return result


def measure_phases(files: list[str], variables: list[str], store: Path) -> dict:
    shutil.rmtree(store, ignore_errors=True)
    listing = store.with_suffix(".files.json")
    listing.write_text(json.dumps({"files": files, "variables": variables}))
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "phases", "--store", str(store),
                          "--listing", str(listing)], env=env, capture_output=True, text=True, check=True).stdout
    shutil.rmtree(store, ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1])


def summarize(rounds: list[dict], sizes: list[int]) -> dict:
    """Best kept run per route and size, ratios at each size, and the per-file slope between the sizes."""
    kept = [r for r in rounds if not r["dropped"]]
    summary: dict = {"rounds_kept": len(kept), "rounds_dropped": len(rounds) - len(kept)}
    if not kept:
        return summary
    best = {key: min(r["runs"][key]["seconds"] for r in kept) for key in kept[0]["runs"]}
    summary["best_seconds"] = best
    summary["store_mib"] = {key: kept[0]["runs"][key]["store_mib"] for key in kept[0]["runs"]}
    summary["peak_rss_mib"] = {key: max(r["runs"][key]["peak_rss_mib"] for r in kept) for key in kept[0]["runs"]}
    for n in sizes:
        summary[f"satflow_vs_floor_{n}"] = round(best[f"satflow_{n}"] / best[f"floor_{n}"], 3)
        summary[f"xarray_vs_satflow_{n}"] = round(best[f"xarray_{n}"] / best[f"satflow_{n}"], 3)
        # Within a round the routes ran minutes apart at most: these ratios survive a host that slows down.
        summary[f"per_round_satflow_vs_floor_{n}"] = [round(r["runs"][f"satflow_{n}"]["seconds"]
                                                            / r["runs"][f"floor_{n}"]["seconds"], 3) for r in kept]
        summary[f"per_round_xarray_vs_satflow_{n}"] = [round(r["runs"][f"xarray_{n}"]["seconds"]
                                                             / r["runs"][f"satflow_{n}"]["seconds"], 3) for r in kept]
    if len(sizes) == 2:
        small, large = sizes
        slopes = {route: (best[f"{route}_{large}"] - best[f"{route}_{small}"]) / (large - small) for route in ROUTES}
        summary["per_file_slope_ms"] = {route: round(1e3 * s, 2) for route, s in slopes.items()}
        summary["satflow_slope_vs_floor"] = round(slopes["satflow"] / slopes["floor"], 3) if slopes["floor"] > 0 else None
    return summary


def dry_run_rate(files: list[str], variables: list[str], work: Path) -> dict:
    """`satflow ingest --dry-run` on the archive, whole command: files per second."""
    load = os.getloadavg()[0]
    command = [sys.executable, "-m", "satflow", "ingest", *files, "--out", str(work / "dry.zarr"), "--dry-run",
               *[a for v in variables for a in ("--var", v)]]
    run = run_commands([command])
    return {**run, "files": len(files), "files_per_s": round(len(files) / run["seconds"], 1), "load_before": round(load, 2)}


# --- archives --------------------------------------------------------------------------------------
def amsua_files(data: Path, resolution: float, steps: int) -> list[str]:
    """Sample files (zlib level 4, like the real product), cached in `data`."""
    from satflow.sources.samples import write_amsua_sample

    folder = data / f"amsua-{resolution}deg"
    existing = sorted(folder.glob("*.nc"))
    if len(existing) < steps:
        print(f"writing {steps} sample files at {resolution} degrees into {folder}", flush=True)
        existing = write_amsua_sample(folder, steps=steps, resolution=resolution, seed=0, complevel=4)
    return [str(p) for p in existing[:steps]]


def tiny_files(data: Path, count: int) -> list[str]:
    """`count` files of one 4 x 8 step each (6-hourly), written with netCDF4."""
    import netCDF4
    import numpy as np

    folder = data / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"tiny_{i:05d}.nc" for i in range(count)]
    rng = np.random.default_rng(0)
    for i, path in enumerate(paths):
        if path.exists():
            continue
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("time", 1)
            ds.createDimension("lat", 4)
            ds.createDimension("lon", 8)
            time_ = ds.createVariable("time", "f8", ("time",))
            time_.units, time_[:] = "hours since 2020-01-01", [6 * i]
            for name, size, units in (("lat", 4, "degrees_north"), ("lon", 8, "degrees_east")):
                axis = ds.createVariable(name, "f4", (name,))
                axis.units, axis[:] = units, np.arange(size, dtype="f4")
            values = ds.createVariable("tmbrs", "f4", ("time", "lat", "lon"), zlib=True, fill_value=np.float32(-999))
            values.units, values[:] = "K", rng.normal(250, 10, (1, 4, 8)).astype("f4")
    return [str(p) for p in paths]


def merged_with_earlier(results: dict, out: Path) -> dict:
    """Archives this run did not measure (`--archives` a subset) keep their figures from the file it
    replaces; each archive's `run` says which command and day produced it."""
    if not out.exists():
        return results
    earlier = json.loads(out.read_text())
    earlier_run = {"command": earlier.get("command"), "load_at_start": earlier.get("machine", {}).get("load_at_start")}
    kept = {name: {"run": earlier_run, **entry} for name, entry in earlier.get("archives", {}).items()
            if name not in results["archives"]}
    return {**results, "archives": {**kept, **results["archives"]}}


# --- main ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[40, 160], help="files of the 0.5-degree archive")
    parser.add_argument("--fine-sizes", type=int, nargs=2, default=[4, 12], help="files of the 0.25-degree product")
    parser.add_argument("--tiny", type=int, default=2000, help="files of the tiny-file archive")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-load", type=float, default=2.5, help="drop rounds starting above this 1-min load")
    parser.add_argument("--data", type=Path, help="folder that caches the generated archives between runs")
    parser.add_argument("--archives", default="coarse,tiny,fine",
                        help="comma-separated: coarse (0.5 degree), tiny, fine (0.25 degree)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2-degree 4/8 files, 40 tiny, 1 round")
    parser.add_argument("--out", type=Path, help="default results/ingest.json (--quick: results/ingest-quick.json)")
    parser.add_argument("--child", choices=["floor", "xarray", "phases"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--listing", help=argparse.SUPPRESS)
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--parts", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        listing = json.loads(Path(args.listing).read_text())
        if args.child == "floor":
            floor_child(args.store, args.part, args.parts, listing["files"], listing["variables"])
        elif args.child == "xarray":
            xarray_child(args.store, listing["files"], listing["variables"], args.tuned)
        else:
            print(json.dumps(phases_child(args.store, listing["files"], listing["variables"])))
        return
    run_benchmark(args)


def run_benchmark(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="satflow-bench-"))
    data = args.data or work
    coarse_resolution, sizes, tiny, rounds = (2.0, [4, 8], 40, 1) if args.quick else (0.5, args.sizes, args.tiny, args.rounds)
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_at_start": os.getloadavg()},
        "command": " ".join(["python", "benchmarks/ingest/run.py", *sys.argv[1:]]),
        "max_load": args.max_load,
        "archives": {},
    }
    stamp = {"command": results["command"], "date": time.strftime("%Y-%m-%d"), "load_at_start": results["machine"]["load_at_start"]}
    wanted = set(args.archives.split(","))
    try:
        if "coarse" in wanted:
            coarse = amsua_files(data, coarse_resolution, max(sizes))
            name = f"amsua-{coarse_resolution}deg"
            print(f"{name}: {sizes} files, tmbrs", flush=True)
            results["archives"][name] = bench_sizes(name, {n: coarse[:n] for n in sizes}, ["tmbrs"], work, rounds,
                                                    args.max_load) | {"run": stamp}
        if "tiny" in wanted:
            small = tiny_files(data, tiny)
            print(f"tiny: {tiny} files of one 4 x 8 step", flush=True)
            results["archives"]["tiny"] = bench_sizes("tiny", {tiny: small}, ["tmbrs"], work, rounds, args.max_load,
                                                      tuned=True) | {"run": stamp}
            results["archives"]["tiny"]["dry_run"] = dry_run_rate(small, ["tmbrs"], work)
        if "fine" in wanted and not args.quick:
            fine = amsua_files(data, 0.25, max(args.fine_sizes))
            print(f"amsua-0.25deg: {args.fine_sizes} files, all 40 features", flush=True)
            results["archives"]["amsua-0.25deg"] = bench_sizes("fine", {n: fine[:n] for n in args.fine_sizes}, [],
                                                               work, rounds, args.max_load) | {"run": stamp}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out = args.out or HERE / "results" / ("ingest-quick.json" if args.quick else "ingest.json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merged_with_earlier(results, args.out), indent=2))
    print(json.dumps({name: {**r["summary"], "phases": r["phases"], **({"dry_run": r["dry_run"]} if "dry_run" in r else {})}
                      for name, r in results["archives"].items()}, indent=2))


if __name__ == "__main__":
    main()
