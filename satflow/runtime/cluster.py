"""The one place that turns `config.cluster` into a Dask client, and the one rule for when to.

Stages take a `distributed.Client` and never care where its workers live: a `LocalCluster` on this
machine (the default), SLURM jobs through dask-jobqueue, or an existing scheduler address.

When a command opens a cluster (`satflow ingest`, `index build`, `index stratify`, `eval`, `decode
DIR/compressed.zarr`): every such command takes `--cluster auto|always|never` (default auto).
`always` opens the configured cluster, `never` runs the work in this process. `auto` opens it when
`cluster.kind` is `slurm` or `address` (a cluster was asked for), or when the work has at least
`CLUSTER_FROM_TASKS` (8) tasks that read and code data (ingest: input files; eval: coded regions,
whole fields or patches, however many a task batches; compress: chunks; decode: decode tasks; eval
and compress count at most one task per `DATA_TASK_BYTES`, 16 MiB, of float32 coded, so a small cube
of many small fields runs in the process), at least `CLUSTER_FROM_LIGHT_TASKS` (64) light tasks (an
index build and stratify read uint8 mask chunks or time steps), or at least `CLUSTER_FROM_SCANS`
(4096) file scans (an ingest `--dry-run` only reads metadata); below that, starting and closing a LocalCluster (about 2 s
measured) costs more than the work. `--no-cluster` (eval) and a bare `--cluster` (index) remain as
aliases of `never` and `always`. The decision is taken after arguments, paths, codec specs and
store facts were checked, so a mistake is reported before any cluster starts. `satflow demo` and
`jobs/pipeline.py` always open the configured cluster.

This module imports `distributed` only when a cluster opens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Literal

from satflow.runtime.options import ClusterConfig, SlurmClusterConfig

log = logging.getLogger(__name__)

ClusterChoice = Literal["auto", "always", "never"]
CLUSTER_CHOICES: tuple[str, ...] = ("auto", "always", "never")
# Measured here (turn 3): a LocalCluster took 1.3 s to start and 0.9 s to close, while the region
# tasks of 40 15 MB files took 5.1 s on two workers: from about 8 data tasks on, workers win it back.
CLUSTER_FROM_TASKS = 8
# A data task earns its share of a cluster at about one such 15 MB file: a stage of smaller tasks
# counts its data in units of this size (54 one-feature OSTIA fields, 1.7 MB in all, took 5.9 s on
# a cluster against about 3 s in the process, for 0.1 s of coding).
DATA_TASK_BYTES = 16 * 2**20
# Mask chunks and index time steps: 64 of them.
CLUSTER_FROM_LIGHT_TASKS = 64
# A metadata scan costs 1.5-10 ms a file with netCDF4 (measured, issue 20): a dry run scans thousands
# in this process before a cluster's start pays for itself.
CLUSTER_FROM_SCANS = 4096


def data_tasks(n_tasks: int, n_bytes: int) -> int:
    """The tasks a stage's data work counts as: its tasks, at most one per DATA_TASK_BYTES of data."""
    return min(n_tasks, -(-n_bytes // DATA_TASK_BYTES))


def cluster_wanted(choice: ClusterChoice, cluster: ClusterConfig, n_tasks: int, *,
                   from_tasks: int = CLUSTER_FROM_TASKS) -> bool:
    """The policy of the module docstring: whether work of `n_tasks` tasks opens the configured cluster."""
    if choice not in CLUSTER_CHOICES:
        raise ValueError(f"--cluster {choice!r}: choose one of {', '.join(CLUSTER_CHOICES)}")
    if choice != "auto":
        return choice == "always"
    return cluster.kind != "local" or n_tasks >= from_tasks


@contextlib.contextmanager
def client_for(choice: ClusterChoice, cluster: ClusterConfig, n_tasks: int, *,
               from_tasks: int = CLUSTER_FROM_TASKS, quiet: bool = False, announce: bool = False):
    """A client to the configured cluster when `cluster_wanted` says so, else None (run in this process).

    `announce` prints the dashboard link on stderr (the commands that used to do so keep it).
    """
    if not cluster_wanted(choice, cluster, n_tasks, from_tasks=from_tasks):
        yield None
        return
    with open_client(cluster, quiet=quiet) as client:
        if announce:
            print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client


@contextlib.contextmanager
def client_opening(choice: ClusterChoice, cluster: ClusterConfig, n_tasks: int, **options):
    """`client_for`, held open by a background thread: yields a Future of its client (or of None).

    A command does its in-process work (ingest's metadata scan and plan) while the workers start,
    then waits on `.result()`: the start (about 1.3 s of a LocalCluster) overlaps the scan instead of
    adding to it. One thread enters and leaves the client's context (a Client is entered and exited
    in one context); on exit the cluster closes, also when the work before `.result()` raised.
    """
    import threading
    from concurrent.futures import Future

    opened: Future = Future()
    finished = threading.Event()

    def hold() -> None:
        try:
            with client_for(choice, cluster, n_tasks, **options) as client:
                opened.set_result(client)
                finished.wait()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting command, not lost
            if not opened.done():
                opened.set_exception(err)
            else:
                log.warning("closing the cluster failed: %s", err)

    holder = threading.Thread(target=hold, name="satflow-cluster", daemon=True)
    holder.start()
    try:
        yield opened
    finally:
        finished.set()
        holder.join()


# The cluster's own chatter (worker start/stop) is noise to command-line users.
QUIET_LEVELS = {"distributed": "WARNING", "tornado": "WARNING", "bokeh": "ERROR"}


def quiet_cluster_logs() -> None:
    """Keep distributed's INFO lines off the terminal without importing it.

    distributed sets its loggers' levels from dask's `logging` config when first imported (also in
    each worker process, which inherits the environment); once imported, the levels are set here.
    """
    for name, level in QUIET_LEVELS.items():
        os.environ.setdefault(f"DASK_LOGGING__{name.upper()}", level.lower())
    if "dask" in sys.modules:
        import dask

        dask.config.set({"logging": {name: level.lower() for name, level in QUIET_LEVELS.items()}})
    if "distributed" in sys.modules:
        for name, level in QUIET_LEVELS.items():
            logging.getLogger(name).setLevel(level)


def slurm_cluster_kwargs(slurm: SlurmClusterConfig, *, job_name: str | None = None) -> dict:
    """Keyword arguments for `dask_jobqueue.SLURMCluster` from the `cluster.slurm` section.

    With `bind: loopback` (the default) the scheduler, its dashboard and the workers listen on
    127.0.0.1 only; `bind: interface` opens them on `interface` for jobs on other nodes.
    """
    directives = list(slurm.job_extra_directives)
    worker_args = list(slurm.worker_extra_args)
    prologue = list(slurm.job_script_prologue)
    if slurm.gpus_per_job:
        directives.append(f"--gres=gpu:{slurm.gpus_per_job}")
        # Workers advertise their GPUs so GPU tasks can ask for `resources={"GPU": 1}`.
        worker_args += ["--resources", f"GPU={slurm.gpus_per_job}"]
        if slurm.processes > 1:
            # Each process would advertise every GPU of the job: the preload splits them.
            worker_args += ["--preload", "satflow.runtime.slurm"]
            prologue.append(f"export SATFLOW_WORKER_PROCESSES={slurm.processes} "
                            f"SATFLOW_GPUS_PER_JOB={slurm.gpus_per_job}")
    if slurm.lifetime:
        worker_args += ["--lifetime", slurm.lifetime]
    if slurm.lifetime_stagger:
        worker_args += ["--lifetime-stagger", slurm.lifetime_stagger]
    loopback = slurm.bind == "loopback"
    if loopback:
        worker_args += ["--dashboard-address", "127.0.0.1:0"]
    kwargs = {
        "queue": slurm.queue,
        "account": slurm.account,
        "job_name": job_name or slurm.job_name,
        "cores": slurm.cores,
        "memory": slurm.memory,
        "processes": slurm.processes,
        "walltime": slurm.walltime,
        "job_extra_directives": directives,
        "job_script_prologue": prologue,
        "worker_extra_args": worker_args,
        "interface": "lo" if loopback else slurm.interface,
        "scheduler_options": {"dashboard_address": slurm.dashboard_address},
        "log_directory": slurm.log_directory,
        "local_directory": slurm.local_directory,
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def slurm_cluster(slurm: SlurmClusterConfig, *, ledger=None, job_name: str | None = None):
    """A `SLURMCluster` (nothing submitted yet); with a `JobLedger`, every job id it submits is recorded."""
    from dask_jobqueue import SLURMCluster

    from satflow.runtime.slurm import ledger_job_class

    return SLURMCluster(job_cls=ledger_job_class(ledger), **slurm_cluster_kwargs(slurm, job_name=job_name))


def slurm_job_script(cluster: ClusterConfig) -> str:
    """The batch script dask-jobqueue would submit for one worker job (nothing is submitted)."""
    # Rendering needs a scheduler; its dashboard may take any free loopback port.
    dask_cluster = slurm_cluster(cluster.slurm.model_copy(update={"dashboard_address": "127.0.0.1:0"}))
    try:
        return dask_cluster.job_script()
    finally:
        dask_cluster.close()


def scale_slurm(dask_cluster, slurm: SlurmClusterConfig) -> None:
    """Adaptive when bounds are set (jobs that retire at their lifetime are replaced), else a fixed count."""
    if slurm.adaptive_maximum is not None or slurm.adaptive_minimum is not None:
        dask_cluster.adapt(minimum_jobs=slurm.adaptive_minimum or 0,
                           maximum_jobs=slurm.adaptive_maximum or max(1, slurm.adaptive_minimum or 0))
    else:
        dask_cluster.scale(jobs=slurm.jobs)


@contextlib.contextmanager
def open_client(cluster: ClusterConfig, *, quiet: bool = False, ledger=None,
                job_name: str | None = None) -> Iterator:
    """Open the configured cluster and a client to it; close both on exit.

    The dashboard link is logged so users can watch progress in a browser. For SLURM, `ledger`
    (a `satflow.runtime.slurm.JobLedger`) records the id of every worker job submitted and
    `job_name` names them (default `cluster.slurm.job_name`).
    """
    from distributed import Client

    if cluster.kind == "address":
        with Client(cluster.address) as client:
            _announce(client, quiet)
            yield client
        return
    if cluster.kind == "slurm":
        dask_cluster = slurm_cluster(cluster.slurm, ledger=ledger, job_name=job_name)
        scale_slurm(dask_cluster, cluster.slurm)
    else:
        dask_cluster = _local_cluster(cluster.local)
    with _dashboard_link_on(cluster.local.dashboard_address if cluster.kind == "local" else None), \
            dask_cluster, Client(dask_cluster) as client:
        _announce(client, quiet)
        yield client


# glibc: distributed's nanny sets MALLOC_TRIM_THRESHOLD_, which turns off the dynamic mmap threshold,
# so every large temporary array became a fresh mmap (measured: 5.7 M page faults, half the ingest's
# CPU in the kernel). A fixed 32 MiB threshold keeps region-sized buffers on the heap for reuse.
WORKER_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": "33554432"}


def worker_environment() -> dict:
    """`distributed.nanny.pre-spawn-environ` with satflow's malloc settings added (set before workers start)."""
    import dask

    return {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENVIRONMENT}


def _local_cluster(local):
    """A LocalCluster whose every listener (scheduler, workers, dashboards) binds to loopback.

    Thread workers (`processes: false`) talk in-process, so only their HTTP servers need binding;
    their NetCDF reads take turns on the HDF5 lock (see satflow.sources.gridded).
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment()}):
        return LocalCluster(
            n_workers=local.n_workers,
            threads_per_worker=local.threads_per_worker,
            memory_limit=local.memory_limit,
            processes=local.processes,
            dashboard_address=local.dashboard_address,
            worker_dashboard_address="127.0.0.1:0",
            # In-process (inproc://) clusters have no TCP host to bind.
            **({"host": "127.0.0.1"} if local.processes else {}),
        )


def _dashboard_link_on(dashboard_address: str | None):
    """Links name the dashboard's own host: an in-process scheduler's address is not where it listens."""
    import dask

    host = (dashboard_address or "").rpartition(":")[0]
    if host in ("", "0.0.0.0", "::", "[::]"):
        return contextlib.nullcontext()
    return dask.config.set({"distributed.dashboard.link": "{scheme}://" + host + ":{port}/status"})


def _announce(client, quiet: bool) -> None:
    if quiet:
        return
    link = client.dashboard_link or "(dashboard unavailable: pip install bokeh)"
    log.info("Dask cluster ready: %s; dashboard: %s", client.scheduler.address, link)
