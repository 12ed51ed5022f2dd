"""The one place that turns `config.cluster` into a Dask client.

Stages take a `distributed.Client` and never care where its workers live: a `LocalCluster` on this
machine (the default), SLURM jobs through dask-jobqueue, or an existing scheduler address.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from distributed import Client, LocalCluster

from satflow.config import ClusterConfig, SlurmClusterConfig

log = logging.getLogger(__name__)


def slurm_cluster_kwargs(slurm: SlurmClusterConfig) -> dict:
    """Keyword arguments for `dask_jobqueue.SLURMCluster` from the `cluster.slurm` section."""
    directives = list(slurm.job_extra_directives)
    worker_args = list(slurm.worker_extra_args)
    if slurm.gpus_per_job:
        directives.append(f"--gres=gpu:{slurm.gpus_per_job}")
        # Workers advertise their GPUs so GPU tasks can ask for `resources={"GPU": 1}`.
        worker_args += ["--resources", f"GPU={slurm.gpus_per_job}"]
    kwargs = {
        "queue": slurm.queue,
        "account": slurm.account,
        "cores": slurm.cores,
        "memory": slurm.memory,
        "processes": slurm.processes,
        "walltime": slurm.walltime,
        "job_extra_directives": directives,
        "job_script_prologue": list(slurm.job_script_prologue),
        "worker_extra_args": worker_args,
        "interface": slurm.interface,
        "log_directory": slurm.log_directory,
        "local_directory": slurm.local_directory,
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def _slurm_cluster(slurm: SlurmClusterConfig):
    from dask_jobqueue import SLURMCluster

    return SLURMCluster(**slurm_cluster_kwargs(slurm))


def slurm_job_script(cluster: ClusterConfig) -> str:
    """The batch script dask-jobqueue would submit for one worker job (nothing is submitted)."""
    slurm_cluster = _slurm_cluster(cluster.slurm)
    try:
        return slurm_cluster.job_script()
    finally:
        slurm_cluster.close()


def _scale_slurm(slurm_cluster, slurm: SlurmClusterConfig) -> None:
    if slurm.adaptive_maximum is not None or slurm.adaptive_minimum is not None:
        slurm_cluster.adapt(minimum_jobs=slurm.adaptive_minimum or 0, maximum_jobs=slurm.adaptive_maximum or 1)
    else:
        slurm_cluster.scale(jobs=slurm.jobs)


@contextlib.contextmanager
def open_client(cluster: ClusterConfig, *, quiet: bool = False) -> Iterator[Client]:
    """Open the configured cluster and a client to it; close both on exit.

    The dashboard link is logged so users can watch progress in a browser.
    """
    if cluster.kind == "address":
        with Client(cluster.address) as client:
            _announce(client, quiet)
            yield client
        return
    if cluster.kind == "slurm":
        dask_cluster = _slurm_cluster(cluster.slurm)
        _scale_slurm(dask_cluster, cluster.slurm)
    else:
        local = cluster.local
        dask_cluster = LocalCluster(
            n_workers=local.n_workers,
            threads_per_worker=local.threads_per_worker,
            memory_limit=local.memory_limit,
            processes=local.processes,
            dashboard_address=local.dashboard_address,
            # Bind worker processes to loopback; a threads-only cluster has no TCP host to bind.
            **({"host": "127.0.0.1"} if local.processes else {}),
        )
    with dask_cluster, Client(dask_cluster) as client:
        _announce(client, quiet)
        yield client


def _announce(client: Client, quiet: bool) -> None:
    if quiet:
        return
    link = client.dashboard_link or "(dashboard unavailable: pip install bokeh)"
    log.info("Dask cluster ready: %s; dashboard: %s", client.scheduler.address, link)
