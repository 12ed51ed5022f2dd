#!/usr/bin/env python
"""Driver: the whole pipeline (ingest, index, eval, report) on the cluster of a config.

The stages are `satflow.pipeline.run_pipeline`, the function `satflow demo` runs too; this driver
adds the cluster (and its SLURM jobs), the run manifest and the stage logs through its stage hook.

Run it on a login node or as a small batch job (jobs/pipeline.sbatch). It opens the cluster from
`cluster` in the config (for SLURM, dask-jobqueue submits the worker jobs), prints the dashboard
link, runs the chosen stages and writes, under --out:

    store.zarr/  index.parquet  eval/ (metrics, manifest, report.html)   the stages' outputs
    run-manifest.json         each stage: status, times, the workers (and SLURM jobs) that ran it
    slurm-jobs.json           every worker job this run submitted (and which were cancelled)
    dask-performance-report.html                                         Dask's own profile
    logs/<stage>.log          the log of each stage

    python jobs/pipeline.py --config configs/slurm.yaml --out runs/amsua '/data/amsua/1bamua_2020*.nc'
    python jobs/pipeline.py -c configs/slurm.yaml --out runs/amsua --stages eval,report

The worker jobs die with the driver: they are cancelled at exit and on SIGTERM (scancel, the
driver's walltime). If the driver was SIGKILLed, the next run cancels the jobs the earlier one left
queued. Re-running the same command resumes: finished ingest regions and eval blocks are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path

STAGES = ("ingest", "index", "eval", "report")
MANIFEST = "run-manifest.json"
log = logging.getLogger("satflow.pipeline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", help="NetCDF files, directories or globs (default: ingest.inputs)")
    parser.add_argument("--config", "-c", default="configs/slurm.yaml", help="YAML config (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set cluster.slurm.queue=debug (repeatable)")
    parser.add_argument("--out", required=True, type=Path, help="output directory (resumable)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="comma-separated stages to run, in pipeline order (default: %(default)s)")
    parser.add_argument("--wait-workers", type=int, default=0, metavar="N",
                        help="wait until N workers joined before the first stage (default: start at once)")
    parser.add_argument("--wait-timeout", type=float, default=1800, metavar="SECONDS")
    return parser


def parse_stages(text: str) -> list[str]:
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ValueError(f"--stages {text!r}: unknown stage(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(STAGES)}")
    return [s for s in STAGES if s in stages]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class WorkerMap:
    """Worker address -> SLURM job id (or None on other clusters), observed while the run goes on.

    Workers of adaptive or walltime-limited clusters come and go, so a background thread looks
    every second; each stage's manifest entry then says which jobs ran its tasks.
    """

    def __init__(self, client) -> None:
        self.client = client
        self.seen: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="satflow-worker-map", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(Exception):
                self.refresh()

    def refresh(self) -> None:
        from satflow.runtime.executors import scheduler_workers

        cluster = getattr(self.client, "cluster", None)
        jobs = {name: getattr(job, "job_id", None) for name, job in (getattr(cluster, "workers", None) or {}).items()}
        for address, info in scheduler_workers(self.client).items():
            name = str(info.get("name", ""))
            job_name = name if name in jobs else name.rsplit("-", 1)[0]
            self.seen.setdefault(address, {"name": name, "slurm_job_id": jobs.get(job_name)})

    def describe(self, addresses) -> dict:
        with contextlib.suppress(Exception):
            self.refresh()
        return {address: self.seen.get(address, {"name": None, "slurm_job_id": None}) for address in sorted(addresses)}

    def stop(self) -> None:
        self._stop.set()


@contextlib.contextmanager
def stage_log(out: Path, stage: str):
    """Everything logged during a stage also goes to OUT/logs/<stage>.log."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "logs" / f"{stage}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


class RunManifest:
    """OUT/run-manifest.json, rewritten after every change so a killed driver leaves a true record."""

    def __init__(self, path: Path, run: str, config, stages: list[str]) -> None:
        self.path = path
        earlier = {}
        with contextlib.suppress(OSError, ValueError):
            earlier = json.loads(path.read_text())
        self.data = {"run": run, "started": _now(), "config": config.model_dump(mode="json"),
                     "stages_requested": stages, "stages": earlier.get("stages", {}),
                     "earlier_runs": [*earlier.get("earlier_runs", []),
                                      *([{k: earlier.get(k) for k in ("run", "started", "finished", "status")}]
                                        if earlier.get("run") else [])]}
        self.write()

    def stage(self, name: str, **fields) -> None:
        self.data["stages"][name] = {**self.data["stages"].get(name, {}), **fields}
        self.write()

    def finish(self, status: str, cluster: dict | None) -> None:
        self.data.update(status=status, finished=_now(), cluster=cluster)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


def manifest_hook(out: Path, run: str, manifest: RunManifest, client, workers: WorkerMap):
    """The `satflow.pipeline` stage hook of the driver: stage log, task stream, manifest entry, timing."""
    from distributed import get_task_stream

    @contextlib.contextmanager
    def hook(record):
        with stage_log(out, record.name), get_task_stream(client) as stream:
            log.info("stage %s: starting (run %s)", record.name, run)
            manifest.stage(record.name, status="running", started=_now(), run=run)
            tic = time.perf_counter()
            yield
            seconds = time.perf_counter() - tic
            log.info("stage %s: done in %.1f s\n%s", record.name, seconds, record.summary)
        ran_on = {task.get("worker") for task in stream.data if task.get("worker")}
        manifest.stage(record.name, status="done", finished=_now(), seconds=round(seconds, 3),
                       summary=record.summary, tasks=len(stream.data), workers=workers.describe(ran_on))
        print(f"[{record.name}] done in {seconds:.1f} s", flush=True)

    return hook


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import distributed  # sets its loggers' levels on import: quiet them after

    for noisy in ("distributed", "tornado", "bokeh"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from satflow.config import ConfigError, load_config

    try:
        config = load_config(args.config, args.overrides)
        stages = parse_stages(args.stages)
    except (ConfigError, ValueError) as err:
        print(f"pipeline.py: {err}", file=sys.stderr)
        return 2
    from distributed import performance_report

    from satflow.pipeline import PipelinePaths, run_pipeline
    from satflow.runtime.cluster import open_client
    from satflow.runtime.executors import as_executor
    from satflow.runtime.slurm import LEDGER_NAME, JobLedger, cancel_leftovers, handle_sigterm

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = PipelinePaths(raw=out / "raw", store=out / "store.zarr", index=out / "index.parquet", eval=out / "eval")
    inputs = list(args.inputs) or list(config.ingest.inputs)
    run = f"satflow-{uuid.uuid4().hex[:8]}"
    manifest = RunManifest(out / MANIFEST, run, config, stages)
    ledger = None
    if config.cluster.kind == "slurm":
        cancel_leftovers(out / LEDGER_NAME)  # jobs an earlier, SIGKILLed driver left queued
        ledger = JobLedger(out / LEDGER_NAME, run)
    handle_sigterm(ledger)
    status, cluster_info = "failed", None
    try:
        with open_client(config.cluster, ledger=ledger, job_name=run) as client:
            print(f"run {run}: dask scheduler {client.scheduler.address}; dashboard {client.dashboard_link}",
                  flush=True)
            if args.wait_workers:
                client.wait_for_workers(args.wait_workers, timeout=args.wait_timeout)
            workers = WorkerMap(client)
            try:
                with performance_report(filename=str(out / "dask-performance-report.html")):
                    run_pipeline(config, paths, stages, inputs=inputs, cluster=lambda: contextlib.nullcontext(client),
                                 hook=manifest_hook(out, run, manifest, client, workers))
                cluster_info = as_executor(client).describe()
            finally:
                workers.stop()
        status = "done"
        return 0
    except BaseException as err:
        status = "terminated" if isinstance(err, (SystemExit, KeyboardInterrupt)) else "failed"
        for stage, entry in manifest.data["stages"].items():
            if entry.get("status") == "running":
                manifest.stage(stage, status=status, error=f"{type(err).__name__}: {err}")
        raise
    finally:
        if ledger is not None:
            ledger.cancel_all("driver exit")  # what the cluster's close did not reach (a kill mid-close)
        manifest.finish(status, cluster_info)


if __name__ == "__main__":
    raise SystemExit(main())
