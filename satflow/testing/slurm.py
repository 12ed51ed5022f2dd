"""A real single-node SLURM on this machine, for tests, CI and benchmarks (no Docker).

    python -m satflow.testing.slurm install      # apt-get the Debian packages when missing
    python -m satflow.testing.slurm run DIR      # start, print the environment, wait for Ctrl-C

`LocalSlurm(root).start()` writes a loopback-only `slurm.conf` (one node with `cpus` CPUs, `gpus`
GPU GRES backed by character devices it creates with `mknod ... c 1 3`, i.e. /dev/null stand-ins),
generates a munge key, starts `munged`, `slurmctld` and `slurmd` in the foreground as its own child
processes, waits until the node is idle, and `stop()` cancels the jobs, then stops exactly those
processes. Everything lives under `root`; clients find it through `env` (`SLURM_CONF`).

Measured here (SLURM 22.05 from Debian bookworm): the node is idle about 1.5 s after start.
Pitfalls it avoids: `SlurmctldHost` must name this host, `DefMemPerCPU` must be set (jobs without
`--mem` otherwise get the whole node), no `cgroup.conf` (`proctrack/linuxproc`, `task/none`), and
`CommunicationParameters=NoInAddrAny` keeps both daemons on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
# The programs each package brings; one missing means its package is missing.
PROGRAMS = {"slurmctld": "slurmctld", "slurmd": "slurmd", "slurm-client": "sbatch", "munge": "munged"}
SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run here (packages missing and not installable, not root, no mknod); says why."""


def which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path=os.pathsep.join(SBIN))


def missing_packages() -> list[str]:
    return [package for package, program in PROGRAMS.items() if which(program) is None]


def install_packages(quiet: bool = True) -> None:
    """`apt-get install` the SLURM and munge packages that are missing; raise SlurmUnavailable if that fails."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"SLURM packages missing ({', '.join(missing)}) and not root to apt-get install them")
    if which("apt-get") is None:
        raise SlurmUnavailable(f"SLURM packages missing ({', '.join(missing)}) and no apt-get on this machine")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    output = subprocess.DEVNULL if quiet else None
    steps = [["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]]
    # A fresh machine has no package lists yet: update first, then install.
    steps.insert(0, ["apt-get", "update", "-q"])
    for step in steps:
        result = subprocess.run(step, env=env, stdout=output, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise SlurmUnavailable(f"`{' '.join(step)}` failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    still = missing_packages()
    if still:
        raise SlurmUnavailable(f"apt-get install finished but {', '.join(still)} is still missing")


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalSlurm:
    """One SLURM controller and one node on 127.0.0.1, all state under `root`."""

    root: Path
    cpus: int = 8  # CPUs the node announces (config_overrides: more than the machine has is fine for tests)
    memory_mb: int = 16000
    gpus: int = 2
    partition: str = "debug"
    node: str = "satflow-node"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    startup_seconds: float | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"

    # --- configuration ---------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """The environment a client (sbatch, squeue, dask-jobqueue) needs to reach this SLURM."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": _path_with_sbin()}

    @contextmanager
    def activated(self) -> Iterator[LocalSlurm]:
        """This process's SLURM_CONF and PATH point at this SLURM inside the block (dask-jobqueue
        runs sbatch with the process environment); the previous values come back after it."""
        saved = {key: os.environ.get(key) for key in ("SLURM_CONF", "PATH")}
        os.environ.update({key: self.env[key] for key in saved})
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @property
    def gpu_devices(self) -> list[Path]:
        return [self.root / "dev" / f"nvidia{i}" for i in range(self.gpus)]

    def write_config(self) -> None:
        for sub in ("etc", "state", "spool", "log", "munge", "dev", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o755)
        for device in self.gpu_devices:
            if not device.exists():
                try:
                    os.mknod(device, 0o666 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null
                except PermissionError as err:
                    raise SlurmUnavailable(f"cannot mknod the fake GPU device {device}: {err}") from err
        host = socket.gethostname()
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        lines = [
            "# Written by satflow.testing.slurm: one node on loopback, for tests.",
            "ClusterName=satflow-test",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "CommunicationParameters=NoInAddrAny",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1,bf_interval=1",
            "DefMemPerCPU=256",
            "KillWait=2",
            "MinJobAge=2",
            "InactiveLimit=0",
            "ReturnToService=2",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SlurmdParameters=config_overrides",
            "GresTypes=gpu",
            f"NodeName={self.node} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={self.memory_mb}{gres} State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        gres_lines = [f"NodeName={self.node} Name=gpu File={device}" for device in self.gpu_devices]
        (self.root / "etc" / "gres.conf").write_text("\n".join(gres_lines) + "\n")

    # --- life cycle --------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> LocalSlurm:
        install_packages()
        if os.geteuid() != 0:
            raise SlurmUnavailable("the local SLURM runs its daemons as root (SlurmUser=root); run the tests as root")
        self.write_config()
        tic = time.perf_counter()
        try:
            self._start_munge()
            self._spawn("slurmctld", [which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait(lambda: self._run(["scontrol", "ping"]).returncode == 0, timeout, "slurmctld to answer")
            self._spawn("slurmd", [which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
            self._wait(self._node_idle, timeout, f"node {self.node} to be idle")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - tic
        return self

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            os.chmod(key, 0o400)
        self._spawn("munged", [which("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}",
                               f"--seed-file={self.root / 'munge' / 'munged.seed'}"])
        self._wait(self.munge_socket.exists, 20, "munged to open its socket")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.stdout", "ab")
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                env=self.env, start_new_session=True)
        log.close()

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited with {process.returncode} while waiting for {what}; "
                                           f"see {self.root / 'log'}:\n{self.log_tail(name)}")
            if ready():
                return
            time.sleep(0.1)
        raise SlurmUnavailable(f"timed out after {timeout:.0f} s waiting for {what}; see {self.root / 'log'}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        texts = []
        for path in sorted((self.root / "log").glob(f"{name}*")):
            texts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    def _node_idle(self) -> bool:
        result = self._run(["sinfo", "-h", "-N", "-o", "%t"])
        return result.returncode == 0 and result.stdout.split() == ["idle"]

    def _run(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel every job of this SLURM, then stop the daemons it started (and only those)."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self._run(["scancel", "--full", "--user", str(os.geteuid())])
            deadline = time.monotonic() + timeout
            while self.queue() and time.monotonic() < deadline:
                time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)

    def __enter__(self) -> LocalSlurm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- small clients -----------------------------------------------------------------------------
    def queue(self, name: str | None = None) -> list[dict]:
        """Jobs the controller still knows: id, name, state (all users, this cluster only)."""
        argv = ["squeue", "-h", "-o", "%i|%j|%T"] + (["--name", name] if name else [])
        result = self._run(argv)
        if result.returncode != 0:
            return []
        jobs = []
        for line in result.stdout.splitlines():
            job_id, job_name, state = line.split("|", 2)
            jobs.append({"id": job_id, "name": job_name, "state": state})
        return jobs

    def job_state(self, job_id: str) -> str:
        result = self._run(["scontrol", "show", "job", str(job_id), "-o"])
        for part in result.stdout.split():
            if part.startswith("JobState="):
                return part.split("=", 1)[1]
        return "GONE"  # MinJobAge passed: the controller forgot it

    def sbatch(self, script: str | Path, *options: str, args: tuple[str, ...] = (), cwd: str | Path | None = None,
               extra_env: dict | None = None) -> str:
        """Submit `script` with sbatch `options` (before it) and script `args` (after it); the job id."""
        result = subprocess.run(["sbatch", "--parsable", *options, str(script), *args],
                                env={**self.env, **(extra_env or {})},
                                capture_output=True, text=True, cwd=cwd, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"sbatch {script} failed: {result.stderr.strip()}")
        return result.stdout.strip().split(";")[0]

    def wait_job(self, job_id: str, timeout: float) -> str:
        """Wait until the job leaves the queue; its final state (COMPLETED, FAILED, ...) or GONE."""
        deadline, last = time.monotonic() + timeout, "UNKNOWN"
        while time.monotonic() < deadline:
            last = self.job_state(job_id)
            if last not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "UNKNOWN"):
                return last
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} still {last} after {timeout:.0f} s")


def _path_with_sbin() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(parts + [p for p in SBIN if p not in parts])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("install", "run"):
        print(__doc__.strip().splitlines()[2:4] and "usage: python -m satflow.testing.slurm install | run DIR",
              file=sys.stderr)
        return 2
    try:
        if argv[0] == "install":
            install_packages(quiet=False)
            print("SLURM packages present: " + ", ".join(PACKAGES))
            return 0
        slurm = LocalSlurm(Path(argv[1] if len(argv) > 1 else "local-slurm")).start()
    except SlurmUnavailable as err:
        print(f"local SLURM: {err}", file=sys.stderr)
        return 1
    print(f"local SLURM up in {slurm.startup_seconds:.1f} s\nexport SLURM_CONF={slurm.conf}", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        slurm.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
