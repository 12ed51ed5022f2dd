"""The ingest wired: `scan_and_plan` (the one scan, then the pure plan), `execute_plan` (create or
extend the store, run one task per region on the executor, fold the statistics) and `run_ingest`
(both)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from satflow.ingest.facts import Skipped
from satflow.ingest.options import IngestConfig
from satflow.ingest.plan import IngestPlan, grid_coordinates, plan_ingest, recorded_config
from satflow.ingest.scan import scan_ingest
from satflow.ingest.tasks import aux_infos_for, infos_for, ingest_task, readers_for
from satflow.runtime.executors import as_executor
from satflow.sources.timecodec import as_time_array
from satflow.store import consolidate, create_template, extend_time, finalize, open_group, remove_partial_writes
from satflow.version import __version__


@dataclass
class IngestReport:
    store: str
    written: int
    skipped: list[Skipped]
    time_steps: int
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase: template, regions, finalise

    def describe(self) -> str:
        lines = [f"ingested {self.written} region(s) into {self.store} ({self.time_steps} time steps)"]
        if self.skipped:
            lines.append(f"{len(self.skipped)} input(s) skipped:")
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def scan_and_plan(inputs: Sequence[str], store: str | Path | None, config: IngestConfig, *,
                  append: bool = False, client=None) -> IngestPlan:
    """Scan the inputs and the store (metadata only, on `client` when given), then plan; writes nothing.

    `store=None` plans the cube alone (`open_archive`). See `plan_ingest` for the plan's modes.
    """
    return plan_ingest(scan_ingest(inputs, store, config, client=client), config, append=append)


def prepare_store(plan: IngestPlan, config: IngestConfig) -> None:
    attrs = {"satflow_config": recorded_config(config), "satflow_version": __version__}
    if plan.mode == "create":
        create_template(plan.store, plan.layout, attrs, grid_coordinates(config.source),
                        serializer=x_serializer(config.codec))
    else:
        remove_partial_writes(plan.store)  # a killed run's half-written chunk files
    if plan.mode == "append" and plan.regions:
        extend_time(plan.store, as_time_array([s.time for r in plan.regions for s in r.slots]))
    open_group(plan.store, mode="r+").attrs.pop("satflow_fingerprint", None)  # stale until finalised
    consolidate(plan.store)  # region tasks open the final layout with one metadata read


def x_serializer(codec):
    """`ingest.codec` as X's Zarr serializer (None: lossless); imported here, only when a codec is set."""
    if codec is None:
        return None
    from satflow.codecs.zarr import zarr_codec

    return zarr_codec(codec)


def execute_plan(plan: IngestPlan, config: IngestConfig, client=None, *, progress: bool = True) -> IngestReport:
    """Prepare the store, write every region of the plan (on `client` if given), fold the statistics."""
    started = time.perf_counter()
    prepare_store(plan, config)
    return write_regions(plan, config, client, progress=progress, template_seconds=time.perf_counter() - started)


def write_regions(plan: IngestPlan, config: IngestConfig, client=None, *, progress: bool = True,
                  template_seconds: float = 0.0) -> IngestReport:
    """Write every region of the plan into its prepared store (`prepare_store`), then fold the statistics."""
    started = time.perf_counter()
    seconds = {"template": template_seconds}
    readers = readers_for(plan, config.source)
    # Each task carries only its own files' metadata: broadcasting every FileInfo to every
    # worker would cost O(files x workers) memory on archives of thousands of files.
    tasks = [(region, infos_for(plan, region), aux_infos_for(plan, region.aux)) for region in plan.task_regions()]
    problems: list[Skipped] = []
    records = []
    for _, (skipped, record) in as_executor(client).map(ingest_task, tasks, plan.store, readers,
                                                        name="ingest-region", retries=2, progress=progress):
        problems += skipped
        records.append(record)
    seconds["regions"] = time.perf_counter() - started
    finalize(plan.store, records)
    seconds["finalise"] = time.perf_counter() - started - seconds["regions"]
    n_steps = open_group(plan.store)["X"].shape[0]
    return IngestReport(plan.store, len(plan.regions), plan.skipped + problems, n_steps,
                        {phase: round(value, 3) for phase, value in seconds.items()})


def run_ingest(inputs: Sequence[str], store: str | Path, config: IngestConfig, *, client=None,
               append: bool = False, overwrite: bool = False, progress: bool = True) -> IngestReport:
    """Scan, plan and write in one call with a client of your own (`satflow ingest` runs
    `satflow.ingest.job.ingest_job`, which also opens the cluster)."""
    if overwrite and os.path.exists(store):
        import shutil

        shutil.rmtree(store)
    plan = scan_and_plan(inputs, store, config, append=append, client=client)
    return execute_plan(plan, config, client, progress=progress)
