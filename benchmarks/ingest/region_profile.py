"""Where a region task's time goes, in a process set up like a Dask worker.

1. The same region tasks with distributed's nanny environment (MALLOC_TRIM_THRESHOLD_ alone,
   which turns off glibc's dynamic mmap threshold) and with satflow's (plus MALLOC_MMAP_THRESHOLD_):
   user and system CPU, minor page faults.
2. A pyinstrument profile of region tasks with satflow's environment.

    python benchmarks/ingest/region_profile.py --files DIR_OR_GLOB... [--var tmbrs]
Writes results/NAME.json and results/NAME.txt (--name, default region_profile).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
NANNY = {"MALLOC_TRIM_THRESHOLD_": "65536"}  # what distributed's nanny sets by default


def run_regions(files: list[str], variables: list[str], profile: bool) -> dict:
    """Plan, write the template, run one region to warm up, then time (or profile) the others."""
    from satflow.config import load_config
    from satflow.ingest import prepare_store, scan_and_plan
    from satflow.ingest.tasks import aux_infos_for, infos_for, ingest_task, readers_for

    overrides = [f"ingest.source.variables={json.dumps(variables)}"] if variables else []
    config = load_config(None, overrides).ingest
    store = Path(tempfile.mkdtemp()) / "region.zarr"
    plan = scan_and_plan(files, store, config)
    prepare_store(plan, config)
    readers = readers_for(plan, config.source)
    tasks = [(region, infos_for(plan, region), aux_infos_for(plan, region.aux)) for region in plan.task_regions()]
    run = lambda task: ingest_task(task, str(store), readers)  # noqa: E731
    run(tasks[0])
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for task in tasks[1:]:
        run(task)
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
    shutil.rmtree(store.parent)
    result = {"regions": len(tasks) - 1, "wall_s": round(wall, 3), "user_s": round(after.ru_utime - before.ru_utime, 3),
              "system_s": round(after.ru_stime - before.ru_stime, 3), "minor_faults": after.ru_minflt - before.ru_minflt}
    if profiler is not None:
        profiler.stop()
        result["profile"] = profiler.output_text(unicode=False, color=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="+", required=True)
    parser.add_argument("--var", dest="variables", action="append", default=[])
    parser.add_argument("--name", default="region_profile", help="results/NAME.json and NAME.txt")
    parser.add_argument("--child", choices=["time", "profile"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    from satflow.ingest import expand_inputs

    files = expand_inputs(args.files)
    if args.child:
        print(json.dumps(run_regions(files, args.variables, args.child == "profile")))
        return
    from satflow.runtime.cluster import WORKER_ENVIRONMENT

    results = {"files": len(files), "variables": args.variables or "all"}
    child = [sys.executable, __file__, "--files", *files, *[a for v in args.variables for a in ("--var", v)]]
    for label, extra, mode in (("nanny_default_env", NANNY, "time"), ("satflow_worker_env", {**NANNY, **WORKER_ENVIRONMENT}, "time"),
                               ("nanny_default_env_again", NANNY, "time"), ("satflow_worker_env_again", {**NANNY, **WORKER_ENVIRONMENT}, "time"),
                               ("profile", {**NANNY, **WORKER_ENVIRONMENT}, "profile")):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | extra
        out = subprocess.run([*child, "--child", mode], env=env, capture_output=True, text=True, check=True).stdout
        results[label] = json.loads(out.strip().splitlines()[-1])
        print(label, {k: v for k, v in results[label].items() if k != "profile"}, flush=True)
    (HERE / "results" / f"{args.name}.txt").write_text(results.pop("profile")["profile"])
    (HERE / "results" / f"{args.name}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
