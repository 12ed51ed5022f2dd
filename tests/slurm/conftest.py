"""A real single-node SLURM (Debian's slurmctld, slurmd, munge) for the `slurm` tests.

The session fixture installs the packages when missing, starts the daemons under a temporary
directory and exports `SLURM_CONF` so that dask-jobqueue's sbatch/scancel reach them. Tests skip
only when the packages cannot be installed here; under CI (`CI` set) that is a failure instead.
"""

from __future__ import annotations

import os

import pytest

from satflow.testing.slurm import LocalSlurm, SlurmUnavailable, install_packages


@pytest.fixture(scope="session")
def local_slurm(tmp_path_factory):
    try:
        install_packages()
    except SlurmUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the slurm tests, but: {err}")
        pytest.skip(f"no local SLURM: {err}")
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    try:
        with slurm.activated():
            yield slurm
    finally:
        slurm.stop()


@pytest.fixture
def worker_logs(tmp_path):
    return tmp_path / "worker-logs"


@pytest.fixture(scope="session")
def slurm_overrides():
    return _slurm_overrides


def _slurm_overrides(logs, *extra: str) -> list[str]:
    """`--set` overrides for small SLURM workers on the local node, logging under `logs`."""
    return ["cluster.kind=slurm", "cluster.slurm.cores=1", "cluster.slurm.memory=1GiB",
            "cluster.slurm.walltime=00:10:00", "cluster.slurm.dashboard_address=127.0.0.1:0",
            f"cluster.slurm.log_directory={logs}", "cluster.slurm.job_script_prologue=['export OMP_NUM_THREADS=1']",
            *extra]


@pytest.fixture(scope="session")
def amsua_files(tmp_path_factory):
    """Four 6-hourly AMSU-like files on a 10-degree grid (18 x 36, 15 tmbrs channels)."""
    from satflow.sources.samples import write_amsua_sample

    raw = tmp_path_factory.mktemp("amsua-raw")
    write_amsua_sample(raw, steps=4, resolution=10.0)
    return raw


TINY_INGEST = {"source": {"variables": ["tmbrs"]}, "chunks": {"time": 1, "feature": -1, "lat": 9, "lon": 18}}


@pytest.fixture(scope="session")
def ingest_config():
    from satflow.ingest.options import IngestConfig

    return IngestConfig.model_validate(TINY_INGEST)


@pytest.fixture(scope="session")
def reference_store(amsua_files, tmp_path_factory, dask_client, ingest_config):
    """The files ingested on a LocalCluster: what every SLURM run must reproduce."""
    from satflow.ingest import run_ingest

    store = tmp_path_factory.mktemp("reference") / "store.zarr"
    run_ingest([str(amsua_files)], store, ingest_config, client=dask_client, progress=False)
    return store
