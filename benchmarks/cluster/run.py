"""Cluster benchmark: the same ingest and eval on SLURM workers (a real local SLURM) and on a LocalCluster.

All in one run, on the same machine at the same time, so only ratios are reported as targets
(machines here are 2 shared cores):

1. worker start-up: a `SLURMCluster` built by satflow (`satflow.runtime.cluster.slurm_cluster`), then
   the clock runs from `scale(jobs=1)` until all the job's worker processes have connected to the
   scheduler; polled every 50 ms, also noting when `squeue` first shows the job RUNNING (submission
   to running = SLURM's scheduling; running to connected = the job starting Python and dask worker).
   Best (and all) of --startups tries, each cluster closed before the next. A LocalCluster's start-up
   (`open_client` with the same workers) is timed beside it.
2. SLURM vs Local after start-up: one SLURM job of WORKERS worker processes (1 thread each) against a
   LocalCluster of WORKERS worker processes (1 thread each), both already started and warmed (one
   untimed ingest + eval each). Then --repeats rounds, alternating which cluster goes first: on each,
   `run_ingest` of the same AMSU-like sample (`write_amsua_sample(seed=1)`, `tmbrs`) into its own store,
   then `run_eval(store, out, EvalConfig(codecs=["sz3:tol=0.5"]))`. Best of the rounds; ratio
   SLURM / Local for ingest, eval and both (target: at most 1.2x).
3. identical results: the two stores' fingerprints (`satflow.store.fingerprint`), a SHA-256 of their X
   and M arrays, and the two evals' metrics.json (every number but
   the encode/decode seconds and MB/s) and compressed containers (bytes).

The local SLURM (`satflow.testing.slurm.LocalSlurm`: slurmctld, slurmd and munge on
127.0.0.1, needs root and the Debian packages) is started first and stopped at the end, always.

    python benchmarks/cluster/run.py            # full run (a few minutes on 2 cores)
    python benchmarks/cluster/run.py --quick    # smoke run (about a minute)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
CODEC = "sz3:tol=0.5"
WORKERS = 2
TARGET = 1.2
TIMING_KEYS = ("encode_seconds", "decode_seconds", "encode_mb_per_s", "decode_mb_per_s")
WORKER_MEMORY = "2GiB"  # per worker process, on both clusters


# --- data ----------------------------------------------------------------------------------------
def amsua_files(work: Path, steps: int, resolution: float) -> list[str]:
    from satflow.sources.samples import write_amsua_sample

    files = write_amsua_sample(work / "amsua-raw", start="2021-03-01", steps=steps, resolution=resolution, seed=1)
    return [str(f) for f in files]


def ingest_config():
    from satflow.ingest.options import IngestConfig
    from satflow.sources.options import SourceConfig

    return IngestConfig(source=SourceConfig(variables=["tmbrs"]))


def store_identity(store: Path) -> dict:
    import zarr

    from satflow.store import fingerprint

    group = zarr.open_group(str(store), mode="r")
    digest = hashlib.sha256()
    for name in ("X", "M"):
        digest.update(np.ascontiguousarray(group[name][:]).tobytes())
    return {"fingerprint": fingerprint(store), "x_m_sha256": digest.hexdigest()[:16], "shape": list(group["X"].shape)}


def eval_identity(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    # Every number of metrics.json except the wall-clock timings (which differ between any two runs).
    metrics = [{k: v for k, v in entry.items() if k not in TIMING_KEYS} for entry in metrics]
    digest = hashlib.sha256()
    for entry in metrics:
        for path in sorted((out / entry["dir"] / "compressed.zarr" / "containers").iterdir()):
            digest.update(path.name.encode() + path.read_bytes())
    return {"metrics_sha256": hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()[:16],
            "containers_sha256": digest.hexdigest()[:16],
            "compression_ratio": metrics[0].get("compression_ratio"), "n_bytes": metrics[0].get("n_bytes")}


# --- clusters ------------------------------------------------------------------------------------
def slurm_config(logs: Path):
    from satflow.runtime.options import SlurmClusterConfig

    # One job of WORKERS processes (1 thread each): the same workers as the LocalCluster. The prologue
    # gives the job's workers what open_client gives local workers (single-thread BLAS, satflow's malloc
    # threshold), so the comparison is of where the workers run, not of their settings.
    return SlurmClusterConfig(cores=WORKERS, processes=WORKERS, memory=f"{2 * WORKERS}GiB", walltime="00:30:00",
                              dashboard_address="127.0.0.1:0", log_directory=str(logs), jobs=1,
                              job_name="satflow-bench",
                              job_script_prologue=["export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1",
                                                   "export MALLOC_MMAP_THRESHOLD_=33554432"])


def local_config():
    from satflow.runtime.options import ClusterConfig, LocalClusterConfig

    return ClusterConfig(local=LocalClusterConfig(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                                  memory_limit=WORKER_MEMORY))


def slurm_startup(slurm, config, tries: int, timeout: float = 120.0) -> list[dict]:
    """scale(jobs=1) -> job RUNNING in squeue -> all WORKERS workers connected; each try on a fresh cluster."""
    from distributed import Client

    from satflow.runtime.cluster import slurm_cluster
    from satflow.runtime.executors import scheduler_workers

    runs = []
    for i in range(tries):
        cluster = slurm_cluster(config, job_name=f"satflow-bench-start{i}")
        try:
            with Client(cluster) as client:
                tic = time.perf_counter()
                cluster.scale(jobs=1)
                running = first = None
                while True:
                    now = time.perf_counter() - tic
                    n = len(scheduler_workers(client))
                    if first is None and n >= 1:
                        first = now
                    if running is None and any(j["state"] == "RUNNING"
                                               for j in slurm.queue(f"satflow-bench-start{i}")):
                        running = now
                    if n >= WORKERS:
                        break
                    if now > timeout:
                        raise TimeoutError(f"{n} of {WORKERS} SLURM workers after {timeout:.0f} s; "
                                           f"job logs in {config.log_directory}")
                    time.sleep(0.05)
                runs.append({"all_connected_s": now, "first_connected_s": first,
                             "running_in_squeue_s": running if running is not None else now})
        finally:
            cluster.close()
        print(f"  SLURM start-up {i + 1}: job RUNNING after {runs[-1]['running_in_squeue_s']:.2f} s, "
              f"{WORKERS} workers connected after {runs[-1]['all_connected_s']:.2f} s", flush=True)
    return runs


def local_startup(tries: int) -> list[float]:
    from satflow.runtime.cluster import open_client

    runs = []
    for _ in range(tries):
        tic = time.perf_counter()
        with open_client(local_config(), quiet=True) as client:
            client.wait_for_workers(WORKERS, timeout=120)
            runs.append(time.perf_counter() - tic)
    print("  LocalCluster start-up: " + ", ".join(f"{s:.2f}" for s in runs) + " s", flush=True)
    return runs


# --- one ingest + eval ---------------------------------------------------------------------------
def ingest_and_eval(files: list[str], work: Path, name: str, client) -> dict:
    from satflow.eval.api import run_eval
    from satflow.eval.options import EvalConfig
    from satflow.ingest import run_ingest

    store, out = work / f"{name}.zarr", work / f"{name}-eval"
    tic = time.perf_counter()
    run_ingest(files, store, ingest_config(), client=client, overwrite=True, progress=False)
    ingest = time.perf_counter() - tic
    tic = time.perf_counter()
    result = run_eval(store, out, EvalConfig(codecs=[CODEC]), client=client, overwrite=True, progress=False)
    evaluation = time.perf_counter() - tic
    return {"ingest_s": ingest, "eval_s": evaluation, "total_s": ingest + evaluation,
            "eval_code_s": result.manifest["seconds"].get("code"),
            "eval_workers": sorted({t["worker"] for t in result.manifest["tasks"]}),
            "store": store, "out": out}


def compare(files: list[str], work: Path, clients: dict, repeats: int) -> dict:
    runs: dict[str, list] = {name: [] for name in clients}
    for name, client in clients.items():  # warm-up: imports, first file opens, numba/sz3 first use
        ingest_and_eval(files, work, f"{name}-warm", client)
    for round_ in range(repeats):
        order = list(clients) if round_ % 2 == 0 else list(clients)[::-1]
        for name in order:
            runs[name].append(ingest_and_eval(files, work, name, clients[name]))
        print(f"  round {round_ + 1} ({' then '.join(order)}): " + ", ".join(
            f"{n} ingest {runs[n][-1]['ingest_s']:.2f} + eval {runs[n][-1]['eval_s']:.2f} s" for n in clients),
            flush=True)
    identity = {name: {**store_identity(runs[name][-1]["store"]), **eval_identity(runs[name][-1]["out"])}
                for name in clients}
    for name in runs:
        for r in runs[name]:
            r.pop("store"), r.pop("out")
    best = {name: {key: min(r[key] for r in runs[name]) for key in ("ingest_s", "eval_s", "total_s")}
            for name in runs}
    ratios = {key: best["slurm"][key] / best["local"][key] for key in ("ingest_s", "eval_s", "total_s")}
    keys = ("fingerprint", "x_m_sha256", "metrics_sha256", "containers_sha256")
    return {"rounds": runs, "best": best, "slurm_over_local": ratios, "identity": identity,
            "identical": all(identity["slurm"][k] == identity["local"][k] for k in keys)}


# --- machine -------------------------------------------------------------------------------------
def machine() -> dict:
    import psutil

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "physical_cpus": psutil.cpu_count(logical=False), "load_average_at_start": list(os.getloadavg())}


def versions() -> dict:
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    import satflow

    found = {"satflow": satflow.__version__}
    for package in ("numpy", "dask", "distributed", "dask-jobqueue", "zarr"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    with contextlib.suppress(Exception):
        found["slurm"] = subprocess.run(["sinfo", "--version"], capture_output=True, text=True).stdout.strip()
    return found


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    s = results["startup"]
    slurm_best = min(s["slurm"], key=lambda r: r["all_connected_s"])
    ax1.barh(["SLURM: submit -> RUNNING", f"SLURM: submit -> {WORKERS} workers", f"LocalCluster: {WORKERS} workers"],
             [slurm_best["running_in_squeue_s"], slurm_best["all_connected_s"], min(s["local"])],
             color=["#9ecae1", "#3182bd", "#fd8d3c"])
    ax1.set_xlabel("seconds (best of %d)" % len(s["local"]))
    ax1.set_title("worker start-up\n(from scale(jobs=1) / open_client)")
    c = results["comparison"]
    keys, labels = ("ingest_s", "eval_s", "total_s"), ("ingest", "eval", "ingest + eval")
    x = np.arange(len(keys))
    for offset, name, color in ((-0.2, "local", "#fd8d3c"), (0.2, "slurm", "#3182bd")):
        bars = ax2.bar(x + offset, [c["best"][name][k] for k in keys], 0.4, color=color,
                       label="LocalCluster" if name == "local" else "SLURM job")
        if name == "slurm":
            for bar, k in zip(bars, keys):
                ax2.annotate(f"{c['slurm_over_local'][k]:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                             ha="center", va="bottom", fontsize=9)
    ax2.set_xticks(x, labels)
    ax2.set_ylabel("seconds (best of %d rounds)" % results["settings"]["repeats"])
    ax2.set_title(f"after start-up: {WORKERS} workers x 1 thread each\n(bars: SLURM / Local, target <= {TARGET}x)")
    ax2.legend()
    fig.suptitle(f"satflow on a local SLURM vs LocalCluster\n{results['settings']['data']}; "
                 f"results identical: {c['identical']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, one round, one start-up (about a minute)")
    parser.add_argument("--steps", type=int, default=8, help="time steps (files) of the AMSU-like sample")
    parser.add_argument("--resolution", type=float, default=1.0, help="grid spacing of the sample (degrees)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds; the best of each is kept")
    parser.add_argument("--startups", type=int, default=3, help="worker start-up tries; best and all reported")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.resolution, args.repeats, args.startups = 4, 3.0, 1, 1

    from satflow.runtime.cluster import open_client, slurm_cluster
    from satflow.testing.slurm import LocalSlurm, SlurmUnavailable

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="satflow-cluster-bench-"))
    results: dict = {"machine": machine()}
    slurm = LocalSlurm(work / "slurm", cpus=8, gpus=0)
    environment = contextlib.ExitStack()  # SLURM_CONF and PATH for dask-jobqueue, restored at the end
    try:
        try:
            slurm.start()
        except SlurmUnavailable as err:
            sys.exit(f"no local SLURM: {err}")
        environment.enter_context(slurm.activated())
        results["slurm_daemons_start_s"] = slurm.startup_seconds
        results["versions"] = versions()
        print(f"local SLURM up in {slurm.startup_seconds:.1f} s", flush=True)
        files = amsua_files(work, args.steps, args.resolution)
        config = slurm_config(work / "logs")
        results["startup"] = {"slurm": slurm_startup(slurm, config, args.startups),
                              "local": local_startup(args.startups)}
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(slurm_cluster(config, job_name="satflow-bench-run"))
            from distributed import Client

            slurm_client = stack.enter_context(Client(cluster))
            cluster.scale(jobs=1)
            slurm_client.wait_for_workers(WORKERS, timeout=120)
            local_client = stack.enter_context(open_client(local_config(), quiet=True))
            local_client.wait_for_workers(WORKERS, timeout=120)
            results["comparison"] = compare(files, work, {"local": local_client, "slurm": slurm_client}, args.repeats)
    finally:
        slurm.stop()
        environment.close()
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_at_end"] = list(os.getloadavg())
    shape = results["comparison"]["identity"]["local"]["shape"]
    results["settings"] = {
        "quick": args.quick, "steps": args.steps, "resolution": args.resolution, "repeats": args.repeats,
        "startups": args.startups, "codec": CODEC, "workers": WORKERS, "threads_per_worker": 1,
        "worker_memory": WORKER_MEMORY,
        "data": f"write_amsua_sample(seed=1, steps={args.steps}, resolution={args.resolution}) tmbrs, store {shape}",
        "slurm": "LocalSlurm (one node on 127.0.0.1); one job, cores=processes=%d, memory %dGiB; prologue sets "
                 "single-thread BLAS and MALLOC_MMAP_THRESHOLD_ as open_client does for local workers"
                 % (WORKERS, 2 * WORKERS),
        "local": "satflow.runtime.cluster.open_client: LocalCluster, %d processes x 1 thread, %s each"
                 % (WORKERS, WORKER_MEMORY),
    }
    c, s = results["comparison"], results["startup"]
    results["targets"] = {
        f"SLURM / Local, {k} after worker start-up <= {TARGET}": {
            "measured": round(c["slurm_over_local"][k], 3), "met": bool(c["slurm_over_local"][k] <= TARGET)}
        for k in ("ingest_s", "eval_s", "total_s")}
    results["targets"]["results identical (store fingerprint, X/M, metrics, containers)"] = {
        "measured": c["identical"], "met": c["identical"]}
    results["startup_best"] = {"slurm_all_connected_s": min(r["all_connected_s"] for r in s["slurm"]),
                               "slurm_running_in_squeue_s": min(r["running_in_squeue_s"] for r in s["slurm"]),
                               "local_s": min(s["local"])}
    results["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "cluster-quick" if args.quick else "cluster"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1, default=float))
    plot(results, args.out / f"{stem}.png")
    print(f"  start-up (best): SLURM job RUNNING {results['startup_best']['slurm_running_in_squeue_s']:.2f} s, "
          f"workers connected {results['startup_best']['slurm_all_connected_s']:.2f} s; "
          f"LocalCluster {results['startup_best']['local_s']:.2f} s")
    for key, value in results["targets"].items():
        print(f"  {key:70s} {value['measured']!s:>8}  {'met' if value['met'] else 'NOT met'}")
    print(f"wrote {args.out / (stem + '.json')} and {stem}.png in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
