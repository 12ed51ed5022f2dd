import pytest

from satflow.config import load_config
from satflow.runtime.cluster import open_client, slurm_cluster_kwargs, slurm_job_script
from satflow.runtime.executors import scheduler_workers


def test_local_cluster_runs_tasks_and_has_dashboard():
    config = load_config(None, ["cluster.local.n_workers=1", "cluster.local.memory_limit=1GiB"])
    with open_client(config.cluster) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        assert len(scheduler_workers(client)) == 1


def test_address_connects_to_existing_scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        config = load_config(None, ["cluster.kind=address", f"cluster.address={cluster.scheduler_address}"])
        with open_client(config.cluster, quiet=True) as client:
            assert client.submit(lambda: 41 + 1).result() == 42


def test_slurm_kwargs_and_job_script():
    config = load_config(None, [
        "cluster.kind=slurm", "cluster.slurm.queue=debug", "cluster.slurm.account=climate",
        "cluster.slurm.cores=8", "cluster.slurm.memory=32GiB", "cluster.slurm.walltime=02:00:00",
        "cluster.slurm.interface=lo", "cluster.slurm.gpus_per_job=2",
        "cluster.slurm.job_extra_directives=['--constraint=a100']",
    ])
    kwargs = slurm_cluster_kwargs(config.cluster.slurm)
    assert kwargs["queue"] == "debug" and kwargs["cores"] == 8
    script = slurm_job_script(config.cluster)
    for line in ("#SBATCH -p debug", "#SBATCH -A climate", "#SBATCH --cpus-per-task=8", "#SBATCH -t 02:00:00",
                 "#SBATCH --constraint=a100", "#SBATCH --gres=gpu:2"):
        assert line in script
    assert "--resources GPU=2" in script and "--interface lo" in script


def listening_hosts() -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.Process().net_connections() if c.status == psutil.CONN_LISTEN}


def test_thread_workers_listen_on_loopback_only():
    """processes: false used to open worker HTTP ports on 0.0.0.0 and :: and print a non-loopback link."""
    config = load_config(None, ["cluster.local.processes=false", "cluster.local.n_workers=2"])
    before = listening_hosts()
    with open_client(config.cluster, quiet=True) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        assert listening_hosts() - before <= {"127.0.0.1"}


def test_worker_processes_get_the_malloc_settings():
    """distributed's MALLOC_TRIM_THRESHOLD_ disables glibc's dynamic mmap threshold; satflow pins it at 32 MiB."""
    import os

    config = load_config(None, ["cluster.local.n_workers=1", "cluster.local.memory_limit=1GiB"])
    with open_client(config.cluster, quiet=True) as client:
        environ = next(iter(client.run(lambda: dict(os.environ)).values()))
    assert environ["MALLOC_MMAP_THRESHOLD_"] == "33554432"
    assert "MALLOC_TRIM_THRESHOLD_" in environ  # distributed's own setting is kept


def test_a_cluster_opening_in_the_background_is_closed_also_when_the_work_before_it_fails():
    from satflow.runtime.cluster import client_opening

    config = load_config(None, ["cluster.local.n_workers=1"]).cluster
    with client_opening("never", config, 100) as opening:
        assert opening.result() is None
    with pytest.raises(RuntimeError, match="the scan failed"):
        with client_opening("always", config, 1) as opening:
            raise RuntimeError("the scan failed")
    client = opening.result()
    assert client.status == "closed"  # opened in the background, closed on the way out
    with client_opening("always", config, 1) as opening:
        client = opening.result()
        assert client.submit(sum, [1, 2]).result() == 3
    assert client.status == "closed"
