"""Ingest tasks: read one region's inputs (primary, then auxiliary products) into a reused block and
write it with its provenance. Unreadable data leaves NaN steps and is reported, never raised."""

from __future__ import annotations

import collections
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from satflow.ingest.facts import Skipped
from satflow.ingest.plan import IngestPlan, Region, Slot
from satflow.sources.auxiliary import AuxReader, AuxSlot, fill_aux
from satflow.sources.base import FileInfo, SourceError, read_input
from satflow.sources.options import SourceConfig
from satflow.store import StepRecord, open_group, write_steps


def fill_steps(out: np.ndarray, t0: int, slots: Sequence[Slot], infos: dict[str, FileInfo],
               source: SourceConfig) -> tuple[list[str], list[Skipped]]:
    """Read the slots' files into `out` (step t goes to out[t - t0]); a file that fails leaves NaN steps.

    Returns the source file of every step ("" where unreadable) and the files that failed.
    """
    files = [""] * len(out)
    problems: list[Skipped] = []
    left_out: list[tuple[str, str]] = []  # members a time-window input had to leave out (read_input reports them)
    for path, group in _slots_by_file(slots).items():
        positions = np.array([slot.t - t0 for slot in group])
        steps = [slot.file_step for slot in group]
        contiguous = np.array_equal(positions, np.arange(positions[0], positions[0] + len(positions)))
        try:
            if contiguous:  # the usual case: decode straight into the block, no copy
                read_input(infos[path], source, steps=steps, out=out[positions[0]:positions[-1] + 1], problems=left_out)
            else:
                out[positions] = read_input(infos[path], source, steps=steps, problems=left_out)
        except SourceError as err:
            out[positions] = np.nan
            problems.append(Skipped(path, err.reason))
            continue
        for position in positions:
            files[position] = path
    return files, problems + [Skipped(path, reason) for path, reason in left_out]


_buffers = threading.local()


def _region_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """One float32 block per worker thread, reused by every region of that shape.

    A fresh array per task is a fresh mmap once it passes glibc's mmap threshold (a 0.25-degree
    step of 40 features is 166 MB): zeroed pages, faults and unmaps for every region.
    """
    buffer = getattr(_buffers, "block", None)
    if buffer is None or buffer.shape != shape:
        _buffers.block = buffer = np.empty(shape, dtype=np.float32)
    return buffer


@dataclass(frozen=True)
class Readers:
    """What a task needs besides its region: the primary source and, per auxiliary product, its reader."""

    source: SourceConfig
    n_features: int
    shape_yx: tuple[int, int]
    aux: tuple[AuxReader, ...] = ()

    @property
    def n_primary(self) -> int:
        return self.aux[0].offset if self.aux else self.n_features


def fill_block(block: np.ndarray, t0: int, slots: Sequence[Slot], aux_slots: Sequence[AuxSlot],
               infos: dict[str, FileInfo], aux_infos: dict[str, dict[str, FileInfo]], readers: Readers):
    """Primary features, then each auxiliary product's, of steps t0.. into `block`.

    Returns the source file per step, (file, time) per step and product, and the inputs that failed.
    """
    files, problems = fill_steps(block[:, :readers.n_primary], t0, slots, infos, readers.source)
    aux_used = [[] for _ in range(len(block))]
    for reader in readers.aux:
        mine = [s for s in aux_slots if s.product == reader.name]
        used, failed = fill_aux(block, t0, mine, reader, aux_infos.get(reader.name, {}))
        for step, pair in zip(aux_used, used):
            step.append(pair)
        problems += [Skipped(path, f"auxiliary product {reader.name}: {reason}") for path, reason in failed]
    return files, aux_used, problems


def ingest_region(store: str, region: Region, infos: dict[str, FileInfo], readers: Readers,
                  aux_infos: dict[str, dict[str, FileInfo]] | None = None) -> tuple[list[Skipped], StepRecord]:
    """One task: read the region's files, write its steps. Unreadable data leaves NaN steps, reported.

    Returns the inputs that failed and what was written (for `finalize`, which then reads nothing back).
    """
    block = _region_buffer((region.t1 - region.t0, readers.n_features, *readers.shape_yx))
    files, aux_used, problems = fill_block(block, region.t0, region.slots, region.aux, infos, aux_infos or {},
                                           readers)
    record = write_steps(open_group(store, mode="r+", consolidated=True), region.t0, block, files,
                         aux_used if readers.aux else ())
    return problems, record


def ingest_task(task: tuple, store: str, readers: Readers) -> tuple[list[Skipped], StepRecord]:
    """`task` is (region, its files' metadata, its auxiliary files' metadata per product)."""
    region, infos, aux_infos = task
    return ingest_region(store, region, infos, readers, aux_infos)


def _slots_by_file(slots: Sequence[Slot]) -> dict[str, list[Slot]]:
    grouped: dict[str, list[Slot]] = collections.defaultdict(list)
    for slot in slots:
        grouped[slot.path].append(slot)
    return grouped


def readers_for(plan: IngestPlan, source: SourceConfig) -> Readers:
    layout = plan.layout
    return Readers(source, len(layout.features), (len(layout.lat), len(layout.lon)),
                    tuple(a.reader for a in plan.aux))


def aux_infos_for(plan: IngestPlan, aux_slots: Sequence[AuxSlot]) -> dict[str, dict[str, FileInfo]]:
    """Each product's metadata of only the auxiliary files these slots read."""
    by_name = {a.reader.name: a for a in plan.aux}
    infos: dict[str, dict[str, FileInfo]] = collections.defaultdict(dict)
    for slot in aux_slots:
        infos[slot.product][slot.scene.path] = by_name[slot.product].infos[slot.scene.path]
    return dict(infos)


def infos_for(plan: IngestPlan, region: Region) -> dict[str, FileInfo]:
    return {slot.path: plan.infos[slot.path] for slot in region.slots}
