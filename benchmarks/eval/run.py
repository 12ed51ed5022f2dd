"""Eval benchmark: `satflow eval` through Dask against a plain in-process loop, scaling, metric cost, a sweep.

All in one run, on the same machine at the same time, so only ratios are reported as targets
(machines here are 2 shared cores):

1. eval vs loop: `run_eval` on a LocalCluster (1 worker process, 1 thread) against a plain loop in
   this process over the SAME blocks (those of the eval plan) with the SAME codec: read the block
   from the store's zarr arrays, `codec.encode`, `codec.decode`, `ErrorSums.from_block` (with the
   eval's bound, histogram scale and section bytes), then one `merge_all`. Compared on the eval's
   coding phase (manifest seconds["code"]: it also writes the compressed and reconstruction
   stores) and on the whole run (which adds the whole-field metrics and the output files). The
   same eval with `client=None` separates Dask's overhead from the eval's own extra work, and the
   same eval on a 1-worker cluster whose workers also get `MALLOC_MMAP_THRESHOLD_` (the fix of the
   malloc pitfall in DESIGN.md) shows what the worker environment costs (since commit 3bfdfbf
   `open_client` sets it too, so that cluster is now a same-settings control: its gap to the plain
   one is noise). Alternating, best of --repeats.
2. scaling: the same eval on a second LocalCluster of 2 worker processes (1 thread each), alternated
   with the 1-worker runs; the machine's available parallelism is measured beside it (a pure-Python
   spin in 1 process vs 2 at once) together with the load average.
3. metric cost: over the same blocks, in this process, best of --repeats each: encode, decode,
   `ErrorSums.from_block` + merges, and `Moments.from_block` of the reconstruction (the eval's
   other per-block reduction); the eval's whole-field pass (manifest seconds["fields"]) is set
   against its own encode + decode seconds.
4. sweep: block shape (32, 64, 128 and the whole field) x batch size (1, 4, 16) through the 1-worker
   eval: throughput (MB of float32 per second of the coding phase, and of encode alone) and
   compression ratio, for sz3 and for the (slow) errorbound codec on one time step.
5. learned codec: batched encode/decode throughput on a GPU when torch sees one (skipped with a
   note otherwise; `--learned-device cpu` runs the same code path on the CPU).

Datasets: held-out AMSU-like data (`write_amsua_sample(seed=1)` ingested with `satflow ingest`,
15 `tmbrs` channels with swath gaps) and the real OSTIA monthly SST of iris-sample-data ingested the
same way (54 x 1 x 18 x 432, land invalid): a field whose structure we did not design.

The driver runs with the BLAS/OpenMP thread settings that Dask's nanny gives its workers (one
thread), so the loop and the workers run the same numpy code the same way; the cost of leaving
OpenBLAS at its default threads on a shared machine is measured in a child process and reported.

    python benchmarks/eval/run.py            # full run (about 5 minutes on 2 cores)
    python benchmarks/eval/run.py --quick    # smoke run (under a minute)
"""

from __future__ import annotations

import os

# What distributed's nanny sets in every worker (distributed.nanny.pre-spawn-environ): set it here
# before numpy loads, so that the in-process loop and the workers run numpy alike.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
_INHERITED_ENV = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
for _key, _value in SINGLE_THREAD_ENV.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from satflow.data import AMSUA_CHECKPOINT  # noqa: E402

HERE = Path(__file__).parent
SZ3 = "sz3:tol=0.5"
ERRORBOUND = "errorbound:inner=constant,eps=0.5"


# --- data ----------------------------------------------------------------------------------------
def amsua_store(work: Path, steps: int, resolution: float) -> dict:
    """Held-out AMSU-like sample (seed 1, not the training seed 0) ingested by satflow."""
    from satflow.ingest import run_ingest
    from satflow.ingest.options import IngestConfig
    from satflow.sources.options import SourceConfig
    from satflow.sources.samples import write_amsua_sample

    files = write_amsua_sample(work / "amsua-raw", start="2021-03-01", steps=steps, resolution=resolution, seed=1)
    store = work / "amsua.zarr"
    run_ingest([str(f) for f in files], store, IngestConfig(source=SourceConfig(variables=["tmbrs"])),
               overwrite=True, progress=False)
    return {"name": "amsua", "store": store, "source": f"write_amsua_sample(seed=1, steps={steps}, "
            f"resolution={resolution}) + satflow ingest (tmbrs)"}


def ostia_store(work: Path, steps: int | None = None) -> dict:
    """OSTIA monthly SST from iris-sample-data (as tests/sources/test_sources_real_files.py finds it)."""
    import iris_sample_data

    from satflow.ingest import run_ingest
    from satflow.ingest.options import IngestConfig
    from satflow.sources.options import SourceConfig

    path = Path(iris_sample_data.path) / "ostia_monthly.nc"
    store = work / "ostia.zarr"
    run_ingest([str(path)], store, IngestConfig(source=SourceConfig()), overwrite=True, progress=False)
    return {"name": "ostia", "store": store, "time": None if steps is None else f"0:{steps}",
            "source": f"{path.name} (iris-sample-data) + satflow ingest"
            + ("" if steps is None else f", time steps 0:{steps}")}


def store_facts(store: Path) -> dict:
    import zarr

    group = zarr.open_group(str(store), mode="r")
    x = group["X"]
    return {"shape": list(x.shape), "chunks": list(x.chunks), "megabytes_float32": float(np.prod(x.shape) * 4 / 1e6),
            "valid_fraction": float(np.asarray(group["M"][:]).mean())}


# --- the plain loop ------------------------------------------------------------------------------
def _eval_inputs(store: Path, spec: str, config) -> tuple:
    """The eval plan's blocks, and the bound and histogram scale the eval's tasks pass to ErrorSums."""
    import zarr

    from satflow.codecs.spec import CodecSpec, build_codec
    from satflow.eval.api import prepare_eval

    plan = prepare_eval(store, config)[1]
    codec = build_codec(CodecSpec.parse(spec))
    std = np.asarray(zarr.open_group(str(store), mode="r")["std"][:], dtype=np.float64)
    hist_scale = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return plan.blocks, codec, codec.error_bound(len(plan.features)), hist_scale


def plain_loop(store: Path, spec: str, config) -> dict:
    """Read, encode, decode, ErrorSums per block; one merge at the end. Seconds by phase and in all."""
    import zarr

    from satflow.codecs.container import section_sizes
    from satflow.metrics import ErrorSums, merge_all

    blocks, codec, bound, hist_scale = _eval_inputs(store, spec, config)
    phases = dict.fromkeys(("read", "encode", "decode", "metrics", "merge"), 0.0)
    started = time.perf_counter()
    group = zarr.open_group(str(store), mode="r")
    x_array, m_array = group["X"], group["M"]
    parts, n_bytes = [], 0
    for b in blocks:
        t0 = time.perf_counter()
        region = (b.t, slice(None), slice(b.y0, b.y1), slice(b.x0, b.x1))
        x, m = np.asarray(x_array[region]), np.asarray(m_array[region])
        t1 = time.perf_counter()
        data = codec.encode(x, m)
        t2 = time.perf_counter()
        x_hat, _ = codec.decode(data)
        t3 = time.perf_counter()
        parts.append(ErrorSums.from_block(x, x_hat, m, n_bytes=len(data), section_bytes=section_sizes(data),
                                          bound=bound, hist_scale=hist_scale))
        t4 = time.perf_counter()
        n_bytes += len(data)
        for name, seconds in zip(("read", "encode", "decode", "metrics"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[name] += seconds
    t5 = time.perf_counter()
    merged = merge_all(parts)
    phases["merge"] = time.perf_counter() - t5
    return {"seconds": time.perf_counter() - started, "phases": phases, "blocks": len(blocks), "n_bytes": n_bytes,
            "n_valid": int(merged.count.sum())}


# --- eval runs -----------------------------------------------------------------------------------
def eval_once(store: Path, out: Path, config, client) -> dict:
    """One `run_eval`; its manifest's phase seconds, the summed task timings and the totals."""
    from satflow.eval.api import run_eval

    started = time.perf_counter()
    result = run_eval(store, out, config, client=client, overwrite=True, progress=False)
    wall = time.perf_counter() - started
    tasks = [t for t in result.manifest["tasks"] if t["task"] == "code"]
    entry = result.entries[0]
    return {
        "wall_seconds": wall, "seconds": result.manifest["seconds"],
        "tasks": len(tasks), "field_tasks": sum(t["task"] == "field" for t in result.manifest["tasks"]),
        "task_seconds": sum(t["seconds"] for t in tasks),
        "encode_seconds": sum(t["encode_seconds"] for t in tasks),
        "decode_seconds": sum(t["decode_seconds"] for t in tasks),
        "encoded_bytes": sum(t["encoded_bytes"] for t in tasks),
        "field_seconds_in_tasks": sum(t["seconds"] for t in result.manifest["tasks"] if t["task"] == "field"),
        "n_bytes": entry["n_bytes"], "n_valid": entry["n_valid"], "n_blocks": entry["n_blocks"],
        "compression_ratio": entry["compression_ratio"], "bits_per_value": entry["bits_per_value"],
        "workers": len(result.manifest["workers"]),
    }


def best(runs: list[dict], key) -> dict:
    return min(runs, key=key)


def _warm_worker(spec: str) -> None:
    """Import satflow's eval path and build the codec in a worker (one-off start-up is not throughput)."""
    import satflow.eval.tasks  # noqa: F401
    from satflow.codecs.spec import CodecSpec

    CodecSpec.parse(spec).build()


# DESIGN.md "Known pitfalls": distributed's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which
# turns off glibc's dynamic mmap threshold, so every large temporary array is a fresh mmap.
MMAP_FIX = {"MALLOC_MMAP_THRESHOLD_": 33554432}


def open_cluster(stack: contextlib.ExitStack, workers: int, specs: list[str], extra_env: dict | None = None):
    """A local cluster as `satflow eval` opens one (`satflow.runtime.cluster.open_client`: worker
    processes, one thread each), warmed up; returns (client, seconds the warm-up took). `extra_env`
    adds variables to the workers' environment (distributed.nanny.pre-spawn-environ)."""
    import dask

    from satflow.runtime.cluster import open_client
    from satflow.runtime.options import ClusterConfig, LocalClusterConfig

    config = ClusterConfig(local=LocalClusterConfig(n_workers=workers, threads_per_worker=1, processes=True))
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **(extra_env or {})}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        client = stack.enter_context(open_client(config, quiet=True))
    tic = time.perf_counter()
    for spec in specs:
        client.run(_warm_worker, spec)
    return client, time.perf_counter() - tic


# --- machine -------------------------------------------------------------------------------------
def _spin(n: int) -> float:
    tic = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    return time.perf_counter() - tic


def available_parallelism(n: int = 3_000_000) -> dict:
    """How many cores this run really gets now: one spin alone vs two at once in separate processes."""
    alone = min(_spin(n) for _ in range(2))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1000, 1000])  # start-up
        tic = time.perf_counter()
        pool.map(_spin, [n, n])
        both = time.perf_counter() - tic
    return {"one_process_s": alone, "two_processes_s": both, "parallelism": 2 * alone / both,
            "load_average": list(os.getloadavg())}


def machine() -> dict:
    import psutil

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "physical_cpus": psutil.cpu_count(logical=False), "load_average_at_start": list(os.getloadavg()),
            "thread_env": {k: os.environ.get(k) for k in SINGLE_THREAD_ENV},
            "thread_env_inherited": _INHERITED_ENV}
    try:
        import torch

        info.update(cuda_available=torch.cuda.is_available(),
                    gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    except ImportError:
        info["cuda_available"] = False
    return info


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import satflow

    found = {"satflow": satflow.__version__}
    for package in ("numpy", "dask", "distributed", "zarr", "pysz", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


# --- 1 + 2: eval vs loop, 1 vs 2 workers ---------------------------------------------------------
def eval_vs_loop(data: dict, work: Path, clients: dict, repeats: int) -> dict:
    """Loop, eval on 1 worker, eval on 2 workers, eval in-process: alternating, `repeats` rounds."""
    from satflow.eval.options import EvalConfig

    config = EvalConfig(codecs=[SZ3], time=data.get("time"))
    store = data["store"]
    runs: dict[str, list] = {"loop": [], "eval_1_worker": [], "eval_2_workers": [], "eval_in_process": [],
                             "eval_1_worker_mmap_fix": []}
    warm = config.model_copy(update={"time": "0:1"})
    for client in (None, *clients.values()):  # first runs load modules and open files: not counted
        eval_once(store, work / f"{data['name']}-warm", warm, client)
    plain_loop(store, SZ3, config.model_copy(update={"time": "0:1"}))
    for round_ in range(repeats):
        runs["loop"].append(plain_loop(store, SZ3, config))
        runs["eval_1_worker"].append(eval_once(store, work / f"{data['name']}-1w", config, clients[1]))
        runs["eval_2_workers"].append(eval_once(store, work / f"{data['name']}-2w", config, clients[2]))
        runs["eval_in_process"].append(eval_once(store, work / f"{data['name']}-inproc", config, None))
        runs["eval_1_worker_mmap_fix"].append(eval_once(store, work / f"{data['name']}-1w-mmap", config,
                                                        clients["1_mmap_fix"]))
        print(f"  {data['name']} round {round_ + 1}: loop {runs['loop'][-1]['seconds']:.2f} s, "
              + ", ".join(f"{k} code {v[-1]['seconds']['code']:.2f} / total {v[-1]['wall_seconds']:.2f} s"
                          for k, v in runs.items() if k != "loop"), flush=True)
    loop = best(runs["loop"], lambda r: r["seconds"])
    by_code = {k: best(v, lambda r: r["seconds"]["code"]) for k, v in runs.items() if k != "loop"}
    by_total = {k: best(v, lambda r: r["wall_seconds"]) for k, v in runs.items() if k != "loop"}
    one, two = by_code["eval_1_worker"], by_code["eval_2_workers"]
    return {
        "codec": SZ3, "blocks": loop["blocks"], "tasks": one["tasks"], "batch_size": config.batch_size,
        "same_bytes": loop["n_bytes"] == one["n_bytes"] and loop["n_valid"] == one["n_valid"],
        "loop_best": loop, "eval_best_by_code": by_code, "eval_best_by_total": by_total,
        "eval_code_over_loop": one["seconds"]["code"] / loop["seconds"],
        "eval_total_over_loop": by_total["eval_1_worker"]["wall_seconds"] / loop["seconds"],
        "in_process_code_over_loop": by_code["eval_in_process"]["seconds"]["code"] / loop["seconds"],
        "in_process_total_over_loop": by_total["eval_in_process"]["wall_seconds"] / loop["seconds"],
        "mmap_fix_code_over_loop": by_code["eval_1_worker_mmap_fix"]["seconds"]["code"] / loop["seconds"],
        "mmap_fix_total_over_loop": by_total["eval_1_worker_mmap_fix"]["wall_seconds"] / loop["seconds"],
        "scaling_code": one["seconds"]["code"] / two["seconds"]["code"],
        "scaling_total": by_total["eval_1_worker"]["wall_seconds"] / by_total["eval_2_workers"]["wall_seconds"],
        "fields_over_codec": one["seconds"]["fields"] / (one["encode_seconds"] + one["decode_seconds"]),
        "runs": runs,
    }


def _field_and_error_seconds(store: str, repeats: int) -> dict:
    """Best seconds of FieldSums.from_fields and ErrorSums.from_block on one whole field, with the
    minor page faults and system CPU seconds they cost (run in the driver and in a worker)."""
    import resource

    import zarr

    from satflow.eval.fields import FieldSums
    from satflow.metrics import ErrorSums

    group = zarr.open_group(store, mode="r")
    x, m = np.asarray(group["X"][0]), np.asarray(group["M"][0])
    y = x + np.float32(0.1)
    out = {}
    for name, func in (("field_sums", lambda: FieldSums.from_fields(x, y, m)),
                       ("error_sums", lambda: ErrorSums.from_block(x, y, m, bound=0.5))):
        func()
        before, best_s = resource.getrusage(resource.RUSAGE_SELF), np.inf
        for _ in range(repeats):
            tic = time.perf_counter()
            func()
            best_s = min(best_s, time.perf_counter() - tic)
        after = resource.getrusage(resource.RUSAGE_SELF)
        out[name] = {"seconds": best_s, "minor_faults_per_call": (after.ru_minflt - before.ru_minflt) / repeats,
                     "system_seconds_per_call": (after.ru_stime - before.ru_stime) / repeats}
    return out


def worker_vs_driver(store: Path, clients: dict, repeats: int) -> dict:
    """The same metric code on one whole field in this process and in Dask worker processes."""
    result = {"driver": _field_and_error_seconds(str(store), max(repeats, 2))}
    for label, client in clients.items():
        result[label] = next(iter(client.run(_field_and_error_seconds, str(store), max(repeats, 2)).values()))
        result[f"{label}_over_driver"] = {k: result[label][k]["seconds"] / result["driver"][k]["seconds"]
                                          for k in result["driver"]}
    return result


# --- 3: the metric reduction's own cost ----------------------------------------------------------
def metric_cost(store: Path, repeats: int, spec: str = SZ3, time_range: str | None = None) -> dict:
    """Best-of-`repeats` seconds over the eval's blocks of encode, decode, ErrorSums + merges, Moments."""
    import zarr

    from satflow.codecs.container import section_sizes
    from satflow.eval.options import EvalConfig
    from satflow.metrics import ErrorSums, merge_all
    from satflow.stats import Moments

    blocks, codec, bound, hist_scale = _eval_inputs(store, spec, EvalConfig(codecs=[spec], time=time_range))
    group = zarr.open_group(str(store), mode="r")
    xs, ms = [], []
    for b in blocks:
        region = (b.t, slice(None), slice(b.y0, b.y1), slice(b.x0, b.x1))
        xs.append(np.asarray(group["X"][region]))
        ms.append(np.asarray(group["M"][region]))

    def timed(func) -> tuple[float, object]:
        tic = time.perf_counter()
        value = func()
        return time.perf_counter() - tic, value

    times: dict[str, float] = {}
    datas = decoded = None
    for _ in range(repeats):
        seconds, datas = timed(lambda: [codec.encode(x, m) for x, m in zip(xs, ms)])
        times["encode"] = min(times.get("encode", np.inf), seconds)
        seconds, decoded = timed(lambda: [codec.decode(d)[0] for d in datas])
        times["decode"] = min(times.get("decode", np.inf), seconds)
        seconds, parts = timed(lambda: [ErrorSums.from_block(x, y, m, n_bytes=len(d), section_bytes=section_sizes(d),
                                                             bound=bound, hist_scale=hist_scale)
                                        for x, y, m, d in zip(xs, decoded, ms, datas)])
        times["error_sums"] = min(times.get("error_sums", np.inf), seconds)
        seconds, _ = timed(lambda: merge_all(parts))
        times["merge"] = min(times.get("merge", np.inf), seconds)
        seconds, _ = timed(lambda: merge_all([Moments.from_block(y) for y in decoded]))
        times["moments"] = min(times.get("moments", np.inf), seconds)
    codec_seconds = times["encode"] + times["decode"]
    return {"codec": spec, "blocks": len(blocks), "seconds": times,
            "error_sums_over_codec": (times["error_sums"] + times["merge"]) / codec_seconds,
            "with_moments_over_codec": (times["error_sums"] + times["merge"] + times["moments"]) / codec_seconds}


def blas_threads_probe(store: Path, time_range: str) -> dict:
    """ErrorSums over the store's blocks in child processes: OpenBLAS at its default threads vs one."""
    code = ("import numpy, sys, json; sys.path.insert(0, %r); import run; "
            "print(json.dumps(run.metric_cost(run.Path(%r), 2, time_range=%r)['seconds']))") % (
        str(HERE), str(store), time_range)
    results = {}
    for label, one_thread in (("blas_default_threads", False), ("blas_one_thread", True)):
        env = {k: v for k, v in os.environ.items() if k not in SINGLE_THREAD_ENV}
        env.update({k: v for k, v in _INHERITED_ENV.items() if v is not None})
        if one_thread:
            env.update(SINGLE_THREAD_ENV)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
    default, single = results["blas_default_threads"], results["blas_one_thread"]
    results["error_sums_slowdown"] = default["error_sums"] / single["error_sums"]
    results["moments_slowdown"] = default["moments"] / single["moments"]
    return results


# --- where the eval's time goes ------------------------------------------------------------------
PROFILED = {  # label: (file suffix, function name), cumulative seconds under cProfile
    "plan_eval": ("eval/plan.py", "plan_eval"),
    "prepare codec folders (store templates)": ("eval/api.py", "_prepare_codec_dir"),
    "read blocks (zarr; coding and field tasks)": ("eval/tasks.py", "_read_blocks"),
    "encode_batch": ("codecs/base.py", "encode_batch"),
    "decode_batch": ("codecs/base.py", "decode_batch"),
    "write reconstruction blocks (zarr)": ("eval/stores.py", "write_block"),
    "write containers": ("eval/stores.py", "write_container"),
    "ErrorSums.from_block": ("satflow/metrics.py", "from_block"),
    "ErrorSums histogram (searchsorted)": ("satflow/metrics.py", "error_histogram"),
    "Moments.from_block": ("satflow/stats.py", "from_block"),
    "merges (combine_partials)": ("eval/tasks.py", "combine_partials"),
    "FieldSums.from_fields": ("eval/fields.py", "from_fields"),
    "  DSSIM (dssim_field)": ("eval/fields.py", "dssim_field"),
    "  spectra": ("eval/fields.py", "_spectra"),
    "finish_reconstruction": ("eval/stores.py", "finish_reconstruction"),
    "  store.finalize": ("satflow/store.py", "finalize"),
}


def where_time_goes(store: Path, work: Path, time_range: str | None) -> dict:
    """One in-process eval (client=None) under cProfile: cumulative seconds of its main parts."""
    import cProfile
    import pstats

    from satflow.eval.options import EvalConfig

    config = EvalConfig(codecs=[SZ3], time=time_range)
    profiler = cProfile.Profile()
    profiler.enable()
    run = eval_once(store, work / "profiled", config, None)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    parts = {}
    for label, (suffix, name) in PROFILED.items():
        parts[label] = sum(row[3] for (path, _, func), row in stats.items()
                           if func == name and path.replace("\\", "/").endswith(suffix))
    return {"note": "cumulative seconds under cProfile (it adds overhead); one in-process run",
            "manifest_seconds": run["seconds"], "parts": parts}


# --- 4: block shape x batch size -----------------------------------------------------------------
def sweep(store: Path, work: Path, client, spec: str, time_range: str, blocks: list[int], batches: list[int]) -> list:
    from satflow.eval.options import EvalConfig

    rows = []
    n_lat, n_lon = store_facts(store)["shape"][2:]
    for block in blocks + ["field"]:
        shape = (n_lat, n_lon) if block == "field" else (min(block, n_lat), min(block, n_lon))
        if shape == (n_lat, n_lon) and block != "field":
            continue  # a block that covers the field is the "field" row
        for batch in batches:
            config = EvalConfig(codecs=[spec], time=time_range, block={"lat": shape[0], "lon": shape[1]},
                                batch_size=batch, field_metrics=False)
            run = eval_once(store, work / "sweep", config, client)
            megabytes = run["encoded_bytes"] / 1e6
            rows.append({"codec": spec, "block": block, "block_shape": list(shape), "batch_size": batch,
                         "blocks": run["n_blocks"], "tasks": run["tasks"], "megabytes": megabytes,
                         "code_seconds": run["seconds"]["code"], "code_mb_s": megabytes / run["seconds"]["code"],
                         "encode_mb_s": megabytes / run["encode_seconds"],
                         "decode_mb_s": megabytes / run["decode_seconds"],
                         "compression_ratio": run["compression_ratio"], "bits_per_value": run["bits_per_value"]})
            r = rows[-1]
            print(f"  sweep {spec:36s} block {str(block):5s} batch {batch:2d}: {r['tasks']:4d} tasks, "
                  f"{r['code_mb_s']:6.2f} MB/s (encode {r['encode_mb_s']:6.2f}), ratio {r['compression_ratio']:6.2f}",
                  flush=True)
    return rows


# --- 5: learned codec on a GPU -------------------------------------------------------------------
def untrained_checkpoint(path: Path, store: Path) -> Path:
    """A seeded, untrained VAEformerLite (default architecture) for the store's features: enough to
    time batched coding when no trained checkpoint is at hand (its ratio means nothing)."""
    import torch
    import zarr

    from satflow.codecs.learned.checkpoint import CheckpointMeta, save_checkpoint
    from satflow.codecs.learned.model import ModelConfig, VAEformerLite

    group = zarr.open_group(str(store), mode="r")
    features = [str(f) for f in np.asarray(group["feature"][:]).tolist()]
    torch.manual_seed(0)
    config = ModelConfig(n_features=len(features))
    model = VAEformerLite(config)
    model.update()
    meta = CheckpointMeta(model=config, features=features, mean=[float(v) for v in group["mean"][:]],
                          std=[float(v) for v in group["std"][:]])
    return save_checkpoint(path, model, meta, {"optimizer": {}, "torch_rng": torch.get_rng_state()})


def learned_throughput(store: Path, work: Path, device: str | None, checkpoint: Path, batches: list[int],
                       block: int, steps: int) -> dict:
    """Batched encode/decode of a VAEformer checkpoint on `device` (a GPU when torch sees one)."""
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed"}
    if device is None:
        if not torch.cuda.is_available():
            return {"skipped": "no GPU: torch.cuda.is_available() is False on this machine"}
        device = "cuda"
    trained = (checkpoint / "meta.json").exists()
    if not trained:
        checkpoint = untrained_checkpoint(work / "untrained-vaeformer", store)
    import zarr

    from satflow.codecs.registry import get_codec

    group = zarr.open_group(str(store), mode="r")
    x_all, m_all = group["X"], group["M"]
    n_lat, n_lon = x_all.shape[2:]
    xs, ms = [], []
    for t in range(min(steps, x_all.shape[0])):
        for y in range(0, n_lat - block + 1, block):
            for x in range(0, n_lon - block + 1, block):
                xs.append(np.asarray(x_all[t, :, y:y + block, x:x + block]))
                ms.append(np.asarray(m_all[t, :, y:y + block, x:x + block]))
    rows = []
    for batch in batches:
        codec = get_codec("vaeformer", checkpoint=str(checkpoint), device=device, qstep=1.0, batch_size=batch)
        codec.decode_batch(codec.encode_batch(xs[:batch], ms[:batch]))  # warm-up: kernels, caches

        def sync() -> None:
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        sync()
        tic = time.perf_counter()
        streams = []
        for i in range(0, len(xs), batch):
            streams += codec.encode_batch(xs[i:i + batch], ms[i:i + batch])
        sync()
        encode = time.perf_counter() - tic
        tic = time.perf_counter()
        for i in range(0, len(streams), batch):
            codec.decode_batch(streams[i:i + batch])
        sync()
        decode = time.perf_counter() - tic
        megabytes = sum(x.nbytes for x in xs) / 1e6
        rows.append({"batch_size": batch, "blocks": len(xs), "megabytes": megabytes, "encode_mb_s": megabytes / encode,
                     "decode_mb_s": megabytes / decode,
                     "compression_ratio": megabytes * 1e6 / sum(len(s) for s in streams)})
        print(f"  learned on {device} batch {batch:3d}: encode {rows[-1]['encode_mb_s']:.2f} MB/s, "
              f"decode {rows[-1]['decode_mb_s']:.2f} MB/s", flush=True)
    return {"device": device, "checkpoint": str(checkpoint), "trained": trained, "block": block, "rows": rows,
            "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None}


# --- figure --------------------------------------------------------------------------------------
def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    names = list(results["datasets"])
    kinds = [("eval code phase (1 worker)", "eval_code_over_loop"), ("eval whole run (1 worker)", "eval_total_over_loop"),
             ("in-process eval code phase", "in_process_code_over_loop"),
             ("in-process eval whole run", "in_process_total_over_loop"),
             ("eval code phase, 1 worker + MALLOC_MMAP_THRESHOLD_", "mmap_fix_code_over_loop"),
             ("eval whole run, 1 worker + MALLOC_MMAP_THRESHOLD_", "mmap_fix_total_over_loop")]
    ax = axes[0, 0]
    width = 0.8 / len(kinds)
    for k, (label, key) in enumerate(kinds):
        values = [results["datasets"][n]["eval_vs_loop"][key] for n in names]
        ax.bar(np.arange(len(names)) + k * width, values, width, label=label)
    ax.axhline(1.0, color="black", lw=1)
    ax.axhline(1.15, color="red", ls="--", lw=1, label="target 1.15x")
    ax.set_xticks(np.arange(len(names)) + width * (len(kinds) - 1) / 2, names)
    ax.set_ylabel("time / plain loop's time (lower is better)")
    ax.set_title(f"eval vs in-process loop ({SZ3}), best of {results['settings']['repeats']}")
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    for k, (label, key) in enumerate((("coding phase", "scaling_code"), ("whole run", "scaling_total"))):
        values = [results["datasets"][n]["eval_vs_loop"][key] for n in names]
        ax.bar(np.arange(len(names)) + k * 0.4, values, 0.4, label=label)
    ax.axhline(1.7, color="red", ls="--", lw=1, label="target 1.7x")
    par = results["parallelism"]
    ax.axhline(np.mean([p["parallelism"] for p in par]), color="grey", ls=":", lw=1,
               label="parallelism the machine gave (spin test)")
    ax.set_xticks(np.arange(len(names)) + 0.2, names)
    ax.set_ylabel("speed-up, 2 workers vs 1")
    ax.set_title(f"scaling on {results['machine']['cpus']} shared cores")
    ax.legend(fontsize=7)

    ax = axes[0, 2]
    parts = ("error_sums", "merge", "moments")
    bottom = np.zeros(len(names))
    for part in parts:
        values = np.array([results["datasets"][n]["metric_cost"]["seconds"][part]
                           / (results["datasets"][n]["metric_cost"]["seconds"]["encode"]
                              + results["datasets"][n]["metric_cost"]["seconds"]["decode"]) * 100 for n in names])
        ax.bar(names, values, bottom=bottom, label=part)
        bottom += values
    fields = [results["datasets"][n]["eval_vs_loop"]["fields_over_codec"] * 100 for n in names]
    ax.plot(names, fields, "kD", label="whole-field metrics pass (eval)")
    ax.axhline(10, color="red", ls="--", lw=1, label="target 10%")
    ax.set_ylabel("% of encode + decode time (sz3)")
    ax.set_title("metric reduction's own cost")
    ax.legend(fontsize=7)

    for col, (spec, key) in enumerate(((SZ3, "code_mb_s"), (ERRORBOUND, "code_mb_s"))):
        rows = [r for r in results["sweep"] if r["codec"] == spec]
        if not rows:
            continue
        ax = axes[1, col]
        labels = list(dict.fromkeys(str(r["block"]) for r in rows))
        for batch in sorted({r["batch_size"] for r in rows}):
            sel = [r for r in rows if r["batch_size"] == batch]
            ax.plot([str(r["block"]) for r in sel], [r[key] for r in sel], "o-", label=f"batch {batch}")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("block (cells per side; field = whole field)")
        ax.set_ylabel("MB/s of float32 through the coding phase")
        ax.set_title(f"sweep: {spec}")
        ax.legend(fontsize=7)
    ax = axes[1, 2]
    for spec, style in ((SZ3, "o-"), (ERRORBOUND, "s--")):
        rows = [r for r in results["sweep"] if r["codec"] == spec and r["batch_size"] == results["settings"]["batches"][0]]
        if rows:
            ax.plot([str(r["block"]) for r in rows], [r["compression_ratio"] for r in rows], style, label=spec)
    ax.set_xlabel("block (cells per side)")
    ax.set_ylabel("compression ratio vs float32")
    ax.set_title("ratio vs block shape (batch size does not change bytes)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


# --- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, one round, a reduced sweep (< 1 minute)")
    parser.add_argument("--steps", type=int, default=8, help="time steps of the AMSU-like store")
    parser.add_argument("--resolution", type=float, default=1.0, help="grid spacing of the AMSU-like sample (degrees)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument("--blocks", type=int, nargs="+", default=[32, 64, 128], help="square block sides to sweep")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="batch sizes to sweep")
    parser.add_argument("--sweep-steps", type=int, default=2, help="time steps in the sz3 sweep")
    parser.add_argument("--learned-device", help="run the learned-codec throughput on this device even without "
                        "a GPU (e.g. cpu, to check the code path); default: cuda when torch sees one, else skip")
    parser.add_argument("--checkpoint", type=Path, default=AMSUA_CHECKPOINT,
                        help="learned codec checkpoint (default: the one satflow ships; without one a seeded "
                        "untrained model of the default architecture is timed)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.resolution, args.repeats, args.sweep_steps = 4, 3.0, 1, 1
        args.blocks, args.batches = [32], [1, 16]

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="satflow-eval-bench-"))
    results: dict = {"machine": machine(), "versions": versions()}
    try:
        datasets = [amsua_store(work, args.steps, args.resolution), ostia_store(work, 12 if args.quick else None)]
        amsua = datasets[0]["store"]
        # the errorbound codec codes well under 1 MB/s: its sweep runs on one step of a 3-degree grid
        small = amsua if args.resolution >= 3 else amsua_store(work / "small", 1, 3.0)["store"]
        results["data_seconds"] = time.perf_counter() - started
        print(f"data ready in {results['data_seconds']:.1f} s: "
              + ", ".join(f"{d['name']} {store_facts(d['store'])['shape']}" for d in datasets), flush=True)
        results["parallelism"] = [available_parallelism()]
        sections = results["section_seconds"] = {"data": results["data_seconds"]}
        mark = time.perf_counter()

        def done(name: str) -> None:
            nonlocal mark
            sections[name] = time.perf_counter() - mark
            mark = time.perf_counter()

        with contextlib.ExitStack() as stack:
            client1, warm1 = open_cluster(stack, 1, [SZ3, ERRORBOUND])
            client2, warm2 = open_cluster(stack, 2, [SZ3])
            client1_fixed, warm3 = open_cluster(stack, 1, [SZ3], MMAP_FIX)
            results["worker_warm_up_seconds"] = {"1_worker": warm1, "2_workers": warm2, "1_worker_mmap_fix": warm3}
            done("clusters")
            results["worker_vs_driver"] = worker_vs_driver(amsua, {"worker": client1, "worker_mmap_fix": client1_fixed},
                                                           args.repeats)
            done("worker_vs_driver")
            results["datasets"] = {}
            for data in datasets:
                entry = {"source": data["source"], **store_facts(data["store"])}
                entry["eval_vs_loop"] = eval_vs_loop(data, work, {1: client1, 2: client2, "1_mmap_fix": client1_fixed},
                                                     args.repeats)
                entry["metric_cost"] = metric_cost(data["store"], args.repeats, time_range=data.get("time"))
                entry["where_time_goes"] = where_time_goes(data["store"], work, data.get("time"))
                results["datasets"][data["name"]] = entry
                done(data["name"])
            results["parallelism"].append(available_parallelism())
            results["sweep"] = sweep(amsua, work, client1, SZ3, f"0:{args.sweep_steps}", args.blocks, args.batches)
            done("sweep_sz3")
            results["sweep"] += sweep(small, work, client1, ERRORBOUND, "0:1", args.blocks,
                                      args.batches[:1] if args.quick else args.batches)
            done("sweep_errorbound")
        done("closing_clusters")
        results["blas_threads"] = ({"skipped": "--quick"} if args.quick else blas_threads_probe(amsua, "0:2"))
        done("blas_threads")
        results["learned_gpu"] = learned_throughput(amsua, work, args.learned_device, args.checkpoint,
                                                    [1, 4, 16, 64], 32, 1 if args.quick else 4)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["settings"] = {
        "quick": args.quick, "steps": args.steps, "resolution": args.resolution, "repeats": args.repeats,
        "blocks": args.blocks, "batches": args.batches, "sweep_steps": args.sweep_steps, "codec": SZ3,
        "sweep_codecs": {SZ3: f"AMSU-like store, time 0:{args.sweep_steps}",
                         ERRORBOUND: "AMSU-like store at 3 degrees (seed 1), time 0:1"},
        "cluster": "satflow.runtime.cluster.open_client (LocalCluster, processes, 1 thread per worker): 1 and 2 "
                   f"workers, and 1 worker with {MMAP_FIX} added to its environment; all open throughout",
        "eval_batch_size": 4,
    }
    results["seconds"] = time.perf_counter() - started
    results["targets"] = targets(results)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "eval-quick" if args.quick else "eval"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, args.out / f"{stem}.png")
    for key, value in results["targets"].items():
        print(f"  {key:62s} {value['measured']:8.3f}  {'met' if value['met'] else 'NOT met'}")
    print("  seconds by section: " + ", ".join(f"{k} {v:.0f}" for k, v in results["section_seconds"].items()))
    print(f"wrote {args.out / (stem + '.json')} and {stem}.png in {results['seconds']:.0f} s")


def targets(results: dict) -> dict:
    """Each target of issue 9 item 8, per dataset: the measured figure and whether it is met."""
    table = {}
    for name, data in results["datasets"].items():
        loop, cost = data["eval_vs_loop"], data["metric_cost"]
        for key, value, limit, better in (
            ("eval code phase / loop <= 1.15", loop["eval_code_over_loop"], 1.15, "low"),
            ("(1 worker + mmap fix) eval code phase / loop <= 1.15", loop["mmap_fix_code_over_loop"], 1.15, "low"),
            ("eval whole run / loop <= 1.15", loop["eval_total_over_loop"], 1.15, "low"),
            ("2 vs 1 workers, code phase >= 1.7", loop["scaling_code"], 1.7, "high"),
            ("2 vs 1 workers, whole run >= 1.7", loop["scaling_total"], 1.7, "high"),
            ("ErrorSums + merges / sz3 codec time < 0.10", cost["error_sums_over_codec"], 0.10, "low"),
            ("whole-field metrics pass / sz3 codec time < 0.10", loop["fields_over_codec"], 0.10, "low"),
        ):
            table[f"{name}: {key}"] = {"measured": round(value, 3),
                                       "met": bool(value <= limit if better == "low" else value >= limit)}
    return table


if __name__ == "__main__":
    main()
