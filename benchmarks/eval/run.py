"""Eval benchmark: the whole `satflow eval` command as a user runs it, against a plain loop.

Per round, alternating the order of the routes, each timed from process start to exit:

- `satflow eval STORE --codec sz3:tol=0.5 --out D` (a subprocess, default settings: its own
  cluster, field metrics on, no reconstruction store), and its phases from D/manifest.json
  (plan, code, outputs) and, summed over its tasks, read / encode / decode / write / metrics seconds;
- the plain loop in one process: read each time step with zarr, `codec.encode`, `codec.decode`,
  per-feature RMSE and max error with numpy, write the reconstruction to a Zarr array;
- the same loop split over two processes (each half of the steps, one shared output array);
- `satflow eval` on a cluster of one worker (`--cluster always --set cluster.local.n_workers=1`): the
  speedup of the second worker, judged against a spin test (two CPU-bound processes at once against
  one) that says whether the machine gave two cores.

Before each route the script waits (up to 90 s) for the 1-minute load to decay to 2.0, then records
`os.getloadavg()` (and again after the route); a round in which a route started above 2.5 (on 2
cores) is kept in the JSON as refused and left out of the figures. After the rounds, in this
process: reading the eval's compressed store with `xr.open_zarr(...).X.values` against the codec's
own `decode_batch` of the same chunk files (both sides read them from disk, neither holds the other's
result, the order alternates), and the store's size against the sum of its containers.

Stores: the AMSU-like archive (`satflow sample amsua --steps 24 --resolution 0.5`, then `satflow
ingest --var tmbrs`: 24 x 15 x 361 x 720) and a real one (OSTIA monthly SST from iris-sample-data,
ingested as tests/eval does).

    python benchmarks/eval/run.py             # 3 rounds per store (about 10 minutes on 2 quiet cores)
    python benchmarks/eval/run.py --quick     # 4 AMSU steps at 1 degree, 8 OSTIA steps, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from quiet import cpu_probe, settled_load  # noqa: E402  (benchmarks/quiet.py)

SPEC = "sz3:tol=0.5"
MAX_LOAD = 2.5
READ_REPEATS = 7
ONE_WORKER = ("--cluster", "always", "--set", "cluster.local.n_workers=1")
SPIN = [sys.executable, "-c", "sum(i * i for i in range(12_000_000))"]


def spin_test() -> dict:
    """Did the machine give two cores? Two CPU-bound processes at once against one alone (best of 3):
    about 1.0 with two free cores, about 2.0 with one."""
    alone = min(_timed([SPIN]) for _ in range(3))
    together = min(_timed([SPIN, SPIN]) for _ in range(3))
    return {"one_seconds": alone, "two_at_once_seconds": together, "two_over_one": together / alone,
            "load": os.getloadavg()}


# --- the plain loop (also run as `run.py --loop STORE OUT --steps A:B`) ----------------------------
def plain_loop(store: str, out: str, steps: tuple[int, int]) -> dict:
    """Read each step, encode, decode, per-feature RMSE and max error, write the reconstruction."""
    import zarr

    from satflow.codecs.spec import CodecSpec

    codec = CodecSpec.parse(SPEC).build()
    group = zarr.open_group(store, mode="r")
    x_array, m_array = group["X"], group["M"]
    target = zarr.open_array(out, mode="r+")
    rmse, max_error, n_bytes = [], [], 0
    for t in range(*steps):
        x, m = np.asarray(x_array[t]), np.asarray(m_array[t])
        data = codec.encode(x, m)
        x_hat, _ = codec.decode(data)
        n_bytes += len(data)
        valid = m != 0
        error = np.where(valid, x_hat.astype(np.float64) - x, 0.0)
        counts = valid.sum(axis=(1, 2))
        rmse.append(np.sqrt((error**2).sum(axis=(1, 2)) / np.maximum(counts, 1)).tolist())
        max_error.append(np.abs(error).max(axis=(1, 2)).tolist())
        target[t] = x_hat
    return {"n_bytes": n_bytes, "rmse": rmse, "max_error": max_error}


def _create_loop_output(store: str, out: str) -> None:
    import zarr

    x = zarr.open_group(store, mode="r")["X"]
    zarr.create_array(out, shape=x.shape, chunks=(1, *x.shape[1:]), dtype="float32", fill_value=np.nan,
                      overwrite=True)


def _loop_command(store: str, out: str, steps: tuple[int, int]) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--loop", store, out, f"{steps[0]}:{steps[1]}"]


# --- timing routes ---------------------------------------------------------------------------------
def _timed(commands: list[list[str]]) -> float:
    """Start every command at once; seconds until the last one exits (each must succeed)."""
    started = time.perf_counter()
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    for process, command in zip(processes, commands):
        _, err = process.communicate()
        if process.returncode:
            raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {err[-2000:]}")
    return time.perf_counter() - started


def route_eval(store: Path, work: Path, time_range: str | None, extra: tuple[str, ...] = ()) -> dict:
    out = work / "eval-out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "satflow", "eval", str(store), "--codec", SPEC, "--out", str(out), "--no-progress",
               *extra]
    if time_range:
        command += ["--time", time_range]
    seconds = _timed([command])
    manifest = json.loads((out / "manifest.json").read_text())
    tasks = [t for t in manifest["tasks"] if t["task"] == "code"]
    phases = {f"task_{p}": sum(t.get(f"{p}_seconds", 0.0) for t in tasks)
              for p in ("read", "encode", "decode", "write", "metrics")}
    coding = phases["task_encode"] + phases["task_decode"]
    return {"seconds": seconds, "phases": manifest["seconds"], **phases,
            "metric_share_of_encode_decode": phases["task_metrics"] / coding if coding else None,
            "workers": manifest["cluster"].get("workers"), "n_tasks": len(tasks)}


def route_loop(store: Path, work: Path, steps: tuple[int, int], processes: int) -> dict:
    out = str(work / "loop-out.zarr")
    _create_loop_output(str(store), out)
    bounds = np.linspace(steps[0], steps[1], processes + 1).round().astype(int)
    commands = [_loop_command(str(store), out, (int(a), int(b))) for a, b in zip(bounds[:-1], bounds[1:])]
    return {"seconds": _timed(commands), "processes": processes}


def _rounds(store: Path, work: Path, steps: tuple[int, int], time_range: str | None, n_rounds: int) -> list[dict]:
    routes = {
        "eval": lambda: route_eval(store, work, time_range),
        # the same command on a cluster of one worker: how much the second worker buys
        "eval_1_worker": lambda: route_eval(store, work, time_range, ONE_WORKER),
        "loop_1_process": lambda: route_loop(store, work, steps, 1),
        "loop_2_processes": lambda: route_loop(store, work, steps, 2),
    }
    names = list(routes)
    rounds = []
    for i in range(n_rounds):
        order = names[i % len(names):] + names[:i % len(names)]  # alternate which route goes first
        record: dict = {"order": order, "routes": {}}
        for name in order:
            before = settled_load()
            probe = cpu_probe()  # the host's speed now: the load average misses a host slowed as a whole
            result = routes[name]()
            result["load_before"], result["load_after"] = before, os.getloadavg()
            result["cpu_probe_s"] = round(probe, 3)
            record["routes"][name] = result
        record["max_load"] = max(r["load_before"][0] for r in record["routes"].values())
        record["refused"] = record["max_load"] > MAX_LOAD
        ratio = record["routes"]["eval"]["seconds"] / record["routes"]["loop_2_processes"]["seconds"]
        record["eval_over_two_process_loop"] = ratio
        print(f"  round {i}: eval {record['routes']['eval']['seconds']:.1f} s, loop 1p "
              f"{record['routes']['loop_1_process']['seconds']:.1f} s, 2p "
              f"{record['routes']['loop_2_processes']['seconds']:.1f} s, ratio {ratio:.2f}, "
              f"load {record['max_load']:.1f}{' (refused)' if record['refused'] else ''}", flush=True)
        rounds.append(record)
    return rounds


# --- reading the compressed store, its size --------------------------------------------------------
def read_and_size(out: Path) -> dict:
    """xr.open_zarr(...).X.values against codec.decode_batch of the same chunk files; store size.

    Both sides do the same work from the same state: each round reads the chunk files from disk (the
    codec side with plain file reads, the zarr side through open_zarr, its metadata opening included
    and also timed alone), neither holds the other's result (decoded arrays are dropped and collected
    before each side, or the side that runs second reuses memory the first one freed and skips the
    page faults of fresh buffers: 0.4 s of 1.3 s on the AMSU store), and the order alternates.
    """
    import gc
    import statistics

    import xarray as xr
    import zarr

    from satflow.eval.stores import read_compressed_store

    entry = json.loads((out / "metrics.json").read_text())[0]
    compressed = out / entry["dir"] / "compressed.zarr"
    attrs, blocks, _ = read_compressed_store(compressed)
    x = zarr.open_array(str(compressed / "X"), mode="r")
    chunk_yx = tuple(attrs["reconstruction_chunks"])
    t0 = int(attrs["time_range"][0])
    files = [compressed / "X" / x.metadata.encode_chunk_key((b.t - t0, 0, b.y0 // chunk_yx[0], b.x0 // chunk_yx[1]))
             for b in blocks]
    codec = x.metadata.codecs[0].satflow_codec
    codec.decode_batch([files[0].read_bytes()])  # warm

    def codec_side():
        return codec.decode_batch([f.read_bytes() for f in files])

    def zarr_side():
        return xr.open_zarr(str(compressed))["X"].values

    def open_only():
        return xr.open_zarr(str(compressed))["X"]

    sides = {"codec": codec_side, "open_zarr": zarr_side, "open_only": open_only}
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}  # all threads: steadier than wall on a shared machine
    load_before = os.getloadavg()
    for round_ in range(READ_REPEATS):  # alternated, best of each: one reading under load says little
        for name in (list(sides) if round_ % 2 == 0 else list(sides)[::-1]):
            gc.collect()
            tic, cpu_tic = time.perf_counter(), time.process_time()
            result = sides[name]()
            times[name].append(time.perf_counter() - tic)
            cpu[name].append(time.process_time() - cpu_tic)
            if name == "open_zarr":
                megabytes = result.nbytes / 1e6
            del result
    best = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    x_bytes = sum(p.stat().st_size for p in (compressed / "X").rglob("*") if p.is_file() and p.name != "zarr.json")
    all_bytes = sum(p.stat().st_size for p in compressed.rglob("*") if p.is_file())
    m_bytes = sum(p.stat().st_size for p in (compressed / "M").rglob("*") if p.is_file())
    containers_bytes = sum(f.stat().st_size for f in files)
    return {
        "codec_decode_mb_per_s": megabytes / best["codec"], "open_zarr_values_mb_per_s": megabytes / best["open_zarr"],
        "open_zarr_over_codec": best["codec"] / best["open_zarr"],
        "open_zarr_over_codec_median": median["codec"] / median["open_zarr"],
        "open_zarr_over_codec_cpu": min(cpu["codec"]) / min(cpu["open_zarr"]),
        "open_seconds": best["open_only"], "codec_seconds": best["codec"], "open_zarr_seconds": best["open_zarr"],
        "seconds_by_round": times, "cpu_seconds_by_round": cpu,
        "containers_bytes": containers_bytes, "x_chunk_bytes": x_bytes, "mask_bytes": m_bytes, "store_bytes": all_bytes,
        "x_over_containers": x_bytes / containers_bytes, "store_over_containers": all_bytes / containers_bytes,
        "metrics_n_bytes": entry["n_bytes"], "blocks": len(files), "load": [load_before, os.getloadavg()],
    }


# --- stores ----------------------------------------------------------------------------------------
def amsua_store(work: Path, steps: int, resolution: float) -> Path:
    raw, store = work / "amsua-raw", work / "amsua.zarr"
    for command in (["sample", "amsua", "--steps", str(steps), "--resolution", str(resolution), "--out", str(raw)],
                    ["ingest", str(raw), "--var", "tmbrs", "--out", str(store), "--no-progress"]):
        subprocess.run([sys.executable, "-m", "satflow", *command], check=True, capture_output=True)
    return store


def ostia_store(work: Path) -> Path:
    import iris_sample_data

    from satflow.ingest import run_ingest
    from satflow.ingest.options import IngestConfig

    store = work / "ostia.zarr"
    run_ingest([str(Path(iris_sample_data.path) / "ostia_monthly.nc")], store, IngestConfig(), progress=False)
    return store


def store_facts(store: Path) -> dict:
    import zarr

    x = zarr.open_group(str(store), mode="r")["X"]
    return {"shape": list(x.shape), "chunks": list(x.chunks), "megabytes_float32": float(np.prod(x.shape) * 4 / 1e6)}


def summarise(rounds: list[dict]) -> dict:
    kept = [r for r in rounds if not r["refused"]]
    use = kept or rounds
    best = {name: min(r["routes"][name]["seconds"] for r in use) for name in use[0]["routes"]}
    fastest_eval = min(use, key=lambda r: r["routes"]["eval"]["seconds"])["routes"]["eval"]
    return {
        "rounds_kept": len(kept), "rounds_refused": len(rounds) - len(kept),
        "figures_from": "kept rounds" if kept else "REFUSED rounds only (load above 2.5): not a valid figure",
        "best_seconds": best, "eval_over_two_process_loop": best["eval"] / best["loop_2_processes"],
        # routes of one round ran minutes apart: these survive a host whose speed drifts between rounds
        "per_round_eval_over_two_process_loop": [round(r["eval_over_two_process_loop"], 3) for r in use],
        "eval_over_one_process_loop": best["eval"] / best["loop_1_process"],
        "eval_phases_of_fastest": fastest_eval["phases"],
        "metric_share_of_encode_decode": fastest_eval["metric_share_of_encode_decode"],
        # 1 -> 2 workers, when the default ran on two (small work runs in the process): the whole
        # command, and its coding phase (cluster start and imports aside)
        **({"two_workers_speedup": best["eval_1_worker"] / best["eval"],
            "two_workers_code_phase_speedup": min(r["routes"]["eval_1_worker"]["phases"]["code"] for r in use)
            / min(r["routes"]["eval"]["phases"]["code"] for r in use)}
           if fastest_eval["workers"] == 2 else {"two_workers_speedup": None, "default_ran_on": fastest_eval["workers"]}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small stores, one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", nargs=3, metavar=("STORE", "OUT", "A:B"), help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["amsua", "ostia"], help="benchmark one store")
    args = parser.parse_args(argv)
    if args.loop:
        store, out, steps = args.loop
        a, b = (int(v) for v in steps.split(":"))
        plain_loop(store, out, (a, b))
        return 0
    rounds = 1 if args.quick else args.rounds
    results: dict = {"spec": SPEC, "quick": args.quick, "cpus": os.cpu_count(), "max_load": MAX_LOAD, "stores": {}}
    with tempfile.TemporaryDirectory(prefix="satflow-eval-bench-") as tmp:
        work = Path(tmp)
        stores = {"amsua": lambda: (amsua_store(work, 4 if args.quick else 24, 1.0 if args.quick else 0.5), None),
                  "ostia": lambda: (ostia_store(work), "0:8" if args.quick else None)}
        for name, build in stores.items():
            if args.only and name != args.only:
                continue
            store, time_range = build()
            if "spin_test" not in results:
                results["spin_test"] = spin_test()
                print(f"spin test: two at once / one = {results['spin_test']['two_over_one']:.2f}", flush=True)
            n_steps = store_facts(store)["shape"][0]
            steps = (0, 8 if time_range else n_steps)
            print(f"{name}: {store_facts(store)}", flush=True)
            record = {"facts": store_facts(store), "time": time_range, "rounds": _rounds(store, work, steps, time_range,
                                                                                        rounds)}
            record["summary"] = summarise(record["rounds"])
            record["compressed_store"] = read_and_size(work / "eval-out")
            results["stores"][name] = record
            print(json.dumps({"summary": record["summary"], "compressed_store": record["compressed_store"]}, indent=1),
                  flush=True)
    out = HERE / "results" / ("eval-quick.json" if args.quick else "eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
