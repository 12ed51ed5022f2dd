"""What a driver needs beyond dask-jobqueue to run on SLURM without leaking jobs or GPUs.

- `JobLedger`: every worker job the driver submits is recorded (id, time) in a JSON file next to
  the outputs as soon as sbatch answers. The driver cancels them on SIGTERM and at exit; when a
  driver was SIGKILLed (or its node died), the next run reads the ledger and cancels the jobs of the
  earlier run that SLURM still knows, before it submits its own.
- `ledger_job_class(ledger)`: a `SLURMJob` that writes to the ledger; `SLURMCluster(job_cls=...)`.
- `dask_setup(worker)`: a worker preload (`--preload satflow.runtime.slurm`) for jobs with
  `processes > 1` and GPUs. `dask worker --nworkers N --resources GPU=G` makes every process of the
  job advertise all G GPUs, so N tasks would share one device. The preload gives process i the GPUs
  i, i+N, ... of the job (`CUDA_VISIBLE_DEVICES`, which SLURM set for the job) and advertises only
  those; a process left without a GPU advertises none.
- `handle_sigterm()`: SIGTERM (scancel, a walltime, Ctrl-C of srun) unwinds the driver like Ctrl-C,
  so the `with` blocks that close the cluster and cancel the jobs run.

Nothing here imports dask-jobqueue at module level: workers import this module as a preload.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

log = logging.getLogger(__name__)

LEDGER_NAME = "slurm-jobs.json"
PROCESSES_ENV = "SATFLOW_WORKER_PROCESSES"
GPUS_ENV = "SATFLOW_GPUS_PER_JOB"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class JobLedger:
    """The worker jobs of one driver run, in `path` (JSON); safe to call from any thread."""

    def __init__(self, path: str | Path, run: str) -> None:
        self.path = Path(path)
        self.run = run
        self._lock = threading.Lock()
        self._data = {"run": run, "driver": {"host": socket.gethostname(), "pid": os.getpid(),
                                             "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "started": _now()},
                      "jobs": [], "cancelled": []}

    @property
    def job_ids(self) -> list[str]:
        with self._lock:
            return [job["id"] for job in self._data["jobs"]]

    def record(self, job_id: str, name: str = "") -> None:
        with self._lock:
            self._data["jobs"].append({"id": str(job_id), "name": name, "submitted": _now()})
            self._write()
        log.info("submitted SLURM job %s (%s)", job_id, name or "worker")

    def cancel_all(self, reason: str) -> list[str]:
        """Cancel the recorded jobs that SLURM still runs or queues; the ids cancelled."""
        cancelled = cancel_jobs(self.job_ids)
        if cancelled:
            log.info("cancelled SLURM job(s) %s (%s)", " ".join(cancelled), reason)
        with self._lock:
            self._data["cancelled"] += [{"id": job_id, "reason": reason, "at": _now()} for job_id in cancelled]
            self._data["driver"]["finished"] = _now()
            self._write()
        return cancelled

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._data, indent=1))
        os.replace(tmp, self.path)  # a reader never sees half a file


def read_ledger(path: str | Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def live_jobs() -> dict[str, str]:
    """Job id -> state of the jobs SLURM still knows for this user ({} when squeue is missing or fails)."""
    try:
        result = subprocess.run(["squeue", "-h", "--me", "-o", "%i|%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if result.returncode != 0:
        return {}
    return dict(line.split("|", 1) for line in result.stdout.splitlines() if "|" in line)


def cancel_jobs(job_ids: list[str]) -> list[str]:
    """scancel those of `job_ids` still pending or running; the ids cancelled."""
    live = live_jobs()
    alive = [job_id for job_id in job_ids if live.get(job_id) not in (None, "COMPLETED", "CANCELLED", "FAILED")]
    if alive:
        subprocess.run(["scancel", *alive], capture_output=True, text=True, timeout=60)
    return alive


def cancel_leftovers(path: str | Path) -> list[str]:
    """Cancel the jobs an earlier driver recorded in `path` that SLURM still knows (it died without cleaning up)."""
    earlier = read_ledger(path)
    if not earlier:
        return []
    cancelled = cancel_jobs([job["id"] for job in earlier.get("jobs", [])])
    if cancelled:
        log.warning("cancelled %d leftover SLURM job(s) of the earlier run %s: %s", len(cancelled),
                    earlier.get("run", "?"), " ".join(cancelled))
    return cancelled


def ledger_job_class(ledger: JobLedger | None):
    """`SLURMJob` that records its id in `ledger` the moment sbatch returns it."""
    from dask_jobqueue.slurm import SLURMJob

    if ledger is None:
        return SLURMJob

    class LedgerSLURMJob(SLURMJob):
        def _job_id_from_submit_output(self, out):
            job_id = super()._job_id_from_submit_output(out)
            ledger.record(job_id, self.name)
            return job_id

    return LedgerSLURMJob


class DriverTerminated(SystemExit):
    """Raised in the main thread on SIGTERM, so `with` blocks close the cluster and cancel jobs."""


def handle_sigterm(ledger: JobLedger | None = None) -> None:
    """Turn SIGTERM into an exception in the main thread (exit code 143, as a shell reports it).

    The ledger's jobs are cancelled first, in the handler: SLURM sends SIGKILL `KillWait` seconds
    after SIGTERM, which may not leave time to close the cluster politely.
    """

    def _raise(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        log.warning("SIGTERM: cancelling the worker jobs, then stopping")
        if ledger is not None:
            ledger.cancel_all("driver got SIGTERM")
        raise DriverTerminated(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


# --- worker preload ------------------------------------------------------------------------------
def gpus_for_process(index: int, processes: int, devices: list[str]) -> list[str]:
    """The job's GPUs process `index` of `processes` owns: index, index + processes, ..."""
    return devices[index::processes]


def dask_setup(worker) -> None:
    """Give this worker process its own share of the job's GPUs before it registers with the scheduler."""
    processes = int(os.environ.get(PROCESSES_ENV, "1"))
    if processes <= 1 or "GPU" not in worker.state.total_resources:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = [d for d in visible.split(",") if d] if visible else \
        [str(i) for i in range(int(os.environ.get(GPUS_ENV, "0")))]
    name = str(worker.name)
    index = int(name.rsplit("-", 1)[1]) if "-" in name and name.rsplit("-", 1)[1].isdigit() else 0
    mine = gpus_for_process(index, processes, devices)
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)  # before anything initialises CUDA in this process
    for resources in (worker.state.total_resources, worker.state.available_resources):
        if mine:
            resources["GPU"] = float(len(mine))
        else:
            resources.pop("GPU", None)
