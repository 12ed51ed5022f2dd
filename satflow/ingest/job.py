"""`satflow ingest` as one job: check the inputs, open a cluster by the policy of `satflow.runtime.cluster`,
scan, plan and write the store's template while its workers start, write the regions.

Only the standard library and light satflow modules are imported at the top, so the cluster's
workers start before this process imports xarray, zarr and netCDF4 and scans the inputs. Measured on
2 cores (40 0.5-degree files, load 1.3-1.9): no faster than importing first (8.1-8.3 s against
8.2-9.0 s), because there the workers' start (about 1 s of CPU each) and this process's imports and
scan (0.7 s + 0.4 s) compete for the same two cores.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from satflow.ingest.inputs import IngestError, expand_inputs
from satflow.ingest.options import IngestConfig
from satflow.runtime.cluster import CLUSTER_FROM_SCANS, CLUSTER_FROM_TASKS, client_for, client_opening


@dataclass
class IngestJob:
    """What `ingest_job` did: the plan, and the report of the writing (None for a dry run)."""

    plan: object  # satflow.ingest.plan.IngestPlan
    report: object | None  # satflow.ingest.api.IngestReport
    cube: str | None = None  # a dry run of a new store: the lazy cube it would write (describe_cube)


def ingest_job(inputs: Sequence[str], store: str | Path, config: IngestConfig, cluster, *, choice: str = "auto",
               append: bool = False, overwrite: bool = False, dry_run: bool = False, progress: bool = True,
               on_plan=None) -> IngestJob:
    """`satflow ingest`: check the inputs, open a cluster, plan, write.

    `cluster` is the `cluster:` section and `choice` its `--cluster` flag (auto: by input file
    count; a dry run only scans, so it takes a cluster from more files on). Inputs that match
    nothing are reported before any cluster starts, and before `overwrite` deletes the store.
    `on_plan(plan)` is called before the writing starts (the command prints the plan there).
    """
    if not inputs:
        raise IngestError("no inputs: give NetCDF paths/globs or set ingest.inputs in the config")
    if config.codec is not None:
        from satflow.codecs.spec import CodecSpec

        CodecSpec.parse(config.codec).check()  # a bad --codec is named before any cluster starts
    n_files = len(expand_inputs(inputs))
    if dry_run:
        return _dry_run(inputs, store, config, cluster, choice, n_files, append)
    with client_opening(choice, cluster, n_files, from_tasks=CLUSTER_FROM_TASKS) as opening:
        from satflow.ingest.api import prepare_store, scan_and_plan, write_regions  # while the workers start

        if overwrite and os.path.exists(store):
            shutil.rmtree(store)
        # Scanned here while the workers start (the scan of a few thousand files is faster in this
        # process than a cluster's start); from CLUSTER_FROM_SCANS files on, on the workers.
        scan_client = opening.result() if n_files >= CLUSTER_FROM_SCANS else None
        plan = scan_and_plan(inputs, store, config, append=append, client=scan_client)
        if on_plan is not None:
            on_plan(plan)
        tic = time.perf_counter()
        prepare_store(plan, config)  # the template too is written before waiting on the workers
        template_seconds = time.perf_counter() - tic
        report = write_regions(plan, config, opening.result(), progress=progress, template_seconds=template_seconds)
    return IngestJob(plan, report)


def _dry_run(inputs, store, config: IngestConfig, cluster, choice: str, n_files: int, append: bool) -> IngestJob:
    """Scan and plan only (on a cluster from CLUSTER_FROM_SCANS files on); a new store's lazy cube described."""
    from satflow.ingest.api import scan_and_plan
    from satflow.ingest.cube import describe_cube, plan_dataset

    with client_for(choice, cluster, n_files, from_tasks=CLUSTER_FROM_SCANS, quiet=True) as client:
        plan = scan_and_plan(inputs, store, config, append=append, client=client)
    cube = describe_cube(plan_dataset(plan, config.source)) if plan.mode == "create" and plan.regions else None
    return IngestJob(plan, None, cube)
