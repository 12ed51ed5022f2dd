"""cluster.slurm values that reach a job script are validated; loopback unless opted out; GPU split per process."""

from __future__ import annotations

import re

import pytest

from satflow.config import ConfigError, load_config
from satflow.runtime.cluster import slurm_cluster_kwargs, slurm_job_script
from satflow.runtime.slurm import gpus_for_process


@pytest.mark.parametrize("override, message", [
    (r'cluster.slurm.queue="debug\n#SBATCH --uid=0"', r"queue 'debug\n#SBATCH --uid=0' is not a SLURM name"),
    ("cluster.slurm.queue='debug; rm -rf ~'", "queue 'debug; rm -rf ~' is not a SLURM name"),
    ("cluster.slurm.account='a b'", "account 'a b' is not a SLURM name"),
    ("cluster.slurm.walltime='1:00:00; reboot'", "walltime '1:00:00; reboot' is not a SLURM time"),
    ("cluster.slurm.walltime=2h", "walltime '2h' is not a SLURM time"),
    (r'cluster.slurm.job_extra_directives=["--qos=x\n#SBATCH --uid=0"]', r"contains the control character '\n'"),
    ("cluster.slurm.job_extra_directives=['qos=x']", "must be one sbatch option starting with '-'"),
    (r'cluster.slurm.job_script_prologue=["module load x\ncurl evil | sh"]', r"line 'module load x\ncurl evil | sh' contains"),
    ("cluster.slurm.job_script_prologue=['#SBATCH --uid=0']", "is a directive: put sbatch options in"),
    ("cluster.slurm.worker_extra_args=['--name', 'x;reboot']", "worker_extra_args entry 'x;reboot' goes unquoted"),
    ("cluster.slurm.worker_extra_args=['$(reboot)']", "goes unquoted into the worker job script"),
    ("cluster.slurm.local_directory='/tmp/a b'", "local_directory '/tmp/a b' goes unquoted"),
    ("cluster.slurm.memory='4GiB;reboot'", "memory '4GiB;reboot' is not a size"),
    ("cluster.slurm.memory=lots", "memory 'lots' is not a size"),
    ("cluster.slurm.lifetime='1h; reboot'", "lifetime '1h; reboot' is not a duration"),
    ("cluster.slurm.interface=ib0", "interface 'ib0' with bind: loopback"),
    ("cluster.slurm.dashboard_address=0.0.0.0:8787", "dashboard_address '0.0.0.0:8787' is not on loopback"),
    ("cluster.slurm.bind=interface", "bind: interface needs interface"),
])
def test_values_that_reach_the_job_script_are_validated(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        load_config(None, ["cluster.kind=slurm", override])
    assert "cluster.slurm." in str(err.value)  # the message names the key


@pytest.mark.parametrize("walltime", ["30", "30:00", "02:00:00", "1-12", "1-12:00", "2-00:00:00"])
def test_every_slurm_time_format_is_accepted(walltime):
    assert load_config(None, [f"cluster.slurm.walltime='{walltime}'"]).cluster.slurm.walltime == walltime


def test_loopback_is_the_default_and_interface_an_explicit_opt_out(tmp_path):
    loopback = slurm_cluster_kwargs(load_config(None, ["cluster.kind=slurm"]).cluster.slurm)
    assert loopback["interface"] == "lo"
    assert loopback["scheduler_options"] == {"dashboard_address": "127.0.0.1:8787"}
    assert loopback["worker_extra_args"][-2:] == ["--dashboard-address", "127.0.0.1:0"]
    opened = slurm_cluster_kwargs(load_config(None, ["cluster.kind=slurm", "cluster.slurm.bind=interface",
                                                     "cluster.slurm.interface=eth0"]).cluster.slurm)
    assert opened["interface"] == "eth0" and "--dashboard-address" not in opened["worker_extra_args"]


def test_lifetime_and_gpu_split_reach_the_worker_command(tmp_path):
    config = load_config(None, ["cluster.kind=slurm", f"cluster.slurm.log_directory={tmp_path}",
                                "cluster.slurm.processes=2", "cluster.slurm.gpus_per_job=2",
                                "cluster.slurm.lifetime=55m", "cluster.slurm.lifetime_stagger=4m",
                                "cluster.slurm.job_name=amsua-eval"])
    script = slurm_job_script(config.cluster)
    assert "#SBATCH -J amsua-eval" in script.splitlines() and "#SBATCH --gres=gpu:2" in script.splitlines()
    assert "export SATFLOW_WORKER_PROCESSES=2 SATFLOW_GPUS_PER_JOB=2" in script.splitlines()
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    for flag in ("--nworkers 2", "--resources GPU=2 --preload satflow.runtime.slurm",
                 "--lifetime 55m --lifetime-stagger 4m", "--interface lo"):
        assert flag in worker


@pytest.mark.parametrize("devices, processes, expected", [
    (["0"], 2, [["0"], []]),
    (["0", "1"], 2, [["0"], ["1"]]),
    (["3", "5", "6", "7"], 2, [["3", "6"], ["5", "7"]]),
    (["0", "1"], 1, [["0", "1"]]),
])
def test_each_process_owns_distinct_gpus(devices, processes, expected):
    shares = [gpus_for_process(i, processes, devices) for i in range(processes)]
    assert shares == expected
    assert sorted(sum(shares, [])) == sorted(devices)  # no GPU twice, none lost
