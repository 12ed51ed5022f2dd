"""What ingest knows before it plans: plain, picklable data that `satflow.ingest.scan` gathers in one
I/O step and `satflow.ingest.plan.plan_ingest` turns into a plan without touching a file.

Tests build these by hand (FileInfo objects with numpy times and coordinates, no files) to check
the planner alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from satflow.sources.base import FileInfo
from satflow.store import StoreLayout


@dataclass(frozen=True)
class Skipped:
    """An input left out of the cube, with the reason (reported, never raised)."""

    path: str
    reason: str


@dataclass(frozen=True)
class ProductFacts:
    """One auxiliary product's inputs, scanned and grouped like the primary's."""

    inputs: list[FileInfo]
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) per file the scan left out


@dataclass(frozen=True)
class StoreFacts:
    """What an existing store already holds: enough to resume or append without reading it again."""

    layout: StoreLayout
    files_by_time: dict  # time -> the source file that filled it
    ingested: np.ndarray  # uint8 per time step: 1 once its region is fully written (the resume marker)
    config_json: str  # the recorded ingest settings (`recorded_config`); "" in stores that hold none
    aux_scenes: dict[str, set[tuple[str, int]]] = field(default_factory=dict)  # scene keys written, per product


@dataclass(frozen=True)
class IngestFacts:
    """Everything the planner reads: the inputs' metadata, the auxiliary products' and the store's."""

    store: str  # "" plans the cube alone (`open_archive`)
    paths: list[str]  # the expanded input files, sorted
    inputs: list[FileInfo]  # the primary inputs after the source's grouping (a swath window is one input)
    skipped: list[Skipped] = field(default_factory=list)  # files the scan or the grouping left out
    aux: dict[str, ProductFacts] = field(default_factory=dict)  # per ingest.aux_products name
    existing: StoreFacts | None = None  # None: no store at `store` yet
