"""The evaluation plan: plain data, printable with `--dry-run`, testable without a cluster.

`plan_eval(facts, config)` does no I/O: it lays the plan over `EvalFacts`, what `scan_eval`
(satflow.eval.scan) read of the store and index, so tests build facts by hand.

A plan crosses the store's blocks with codec specs. A block is one time step's `(feature, lat,
lon)` region, the unit one container (one chunk of the compressed store) codes: in cube mode the
store's time range cut into a grid of `block` cells (default: the store's chunk, so every read is
chunk-aligned); in index mode a fixed-seed sample of a patch index's patches.

A task codes whole regions: in cube mode whole 2-D fields (one time step, every block of it), as
many consecutive fields as fit in `batch_size` blocks (at least one), so that it computes the
whole-field metrics (DSSIM, error autocorrelation, spectra) from the values it already holds; in
index mode every sampled patch of one time step (patches may straddle chunks of a reconstruction
store). So no two tasks ever write the same chunk of any store.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from satflow.codecs.spec import CodecSpec
from satflow.eval.options import EvalConfig
from satflow.selection import parse_index_range

if TYPE_CHECKING:
    import pandas as pd

INDEX_COLUMNS = ["t", "y0", "x0", "height", "width", "split"]  # what a plan needs of an index row


@dataclass(frozen=True, eq=False)
class EvalFacts:
    """What an evaluation knows of its store (and patch index) before planning; `scan_eval` reads it."""

    store: str  # resolved path
    fingerprint: str
    shape: tuple[int, int, int, int]  # X's (time, feature, lat, lon)
    chunks: tuple[int, int]  # X's lat, lon chunk
    features: tuple[str, ...]
    times: np.ndarray  # every step's time, decoded (datetime64, or cftime dates)
    time_numbers: np.ndarray  # every step's time as stored (CF-encoded numbers)
    time_attrs: dict  # their `units` and `calendar`
    lat: np.ndarray
    lon: np.ndarray
    units: tuple[str, ...] = ()  # per feature; () when the store records none
    std: tuple[float, ...] = ()  # per feature, over valid points (NaN where none)
    source_files: tuple[str, ...] = ()  # per step: the file that filled it ("" if unknown)
    source_sizes: dict[str, int] = field(default_factory=dict)  # bytes of the evaluated steps' files that exist
    index_rows: pd.DataFrame | None = None  # with eval.index: INDEX_COLUMNS of every indexed patch
    attrs: dict = field(default_factory=dict)  # the store's group attributes (copied to compressed stores)


@dataclass(frozen=True)
class Block:
    """Time step `t`, rows [y0, y1) and columns [x0, x1) of the store, all features."""

    t: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def key(self) -> str:
        """Its name in the compressed store (unique per plan)."""
        return f"t{self.t}-y{self.y0}-x{self.x0}-h{self.y1 - self.y0}-w{self.x1 - self.x0}"

    @property
    def shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0, self.x1 - self.x0)


    def contains(self, other: Block) -> bool:
        return (self.t == other.t and self.y0 <= other.y0 and other.y1 <= self.y1
                and self.x0 <= other.x0 and other.x1 <= self.x1)


@dataclass(frozen=True)
class CodingTask:
    """One task: whole regions (positions in `EvalPlan.regions`) and their blocks (positions in
    `EvalPlan.blocks`, region by region), coded with one codec."""

    codec: int  # position in EvalPlan.codecs
    blocks: tuple[int, ...]
    regions: tuple[int, ...] = ()


@dataclass
class EvalPlan:
    store: str
    fingerprint: str
    shape: tuple[int, int, int, int]  # the store's (time, feature, lat, lon)
    features: tuple[str, ...]
    time_range: tuple[int, int]
    mode: str  # cube | index
    block_shape: tuple[int, int]  # cube mode: the block grid; index mode: the patch size
    reconstruction_chunks: tuple[int, int]  # lat, lon chunk of the reconstruction stores
    blocks: list[Block]
    regions: list[Block]  # what a task reads and measures whole: 2-D fields (cube) or patches (index)
    codecs: list[CodecSpec]
    tasks: list[CodingTask] = field(repr=False)
    batch_size: int = 4
    field_metrics: bool = True  # DSSIM, error autocorrelation and spectra of every region

    @property
    def fields(self) -> list[Block]:
        """The regions whose whole-field metrics are computed."""
        return self.regions if self.field_metrics else []

    @property
    def n_coded_regions(self) -> int:
        """(codec, region) pairs coded: the work the cluster policy counts, since a task batches whole
        fields (24 whole-field chunks are 6 tasks at batch 4, and still 24 fields of work)."""
        return sum(len(task.regions) for task in self.tasks)

    @property
    def n_coded_bytes(self) -> int:
        """float32 bytes of every (codec, block) pair coded: the data the cluster policy weighs."""
        return sum(self.blocks[b].shape[0] * self.blocks[b].shape[1] for task in self.tasks for b in task.blocks
                   ) * len(self.features) * 4

    @property
    def n_cells(self) -> int:
        return sum(b.shape[0] * b.shape[1] for b in self.blocks) * len(self.features)

    def describe(self) -> str:
        t0, t1 = self.time_range
        lines = [
            f"eval plan ({self.mode}) of {self.store} (fingerprint {self.fingerprint})",
            f"  store     {dict(zip(('time', 'feature', 'lat', 'lon'), self.shape))}",
            f"  time      steps {t0}..{t1 - 1}",
            f"  blocks    {len(self.blocks)} of {self.block_shape[0]} x {self.block_shape[1]} cells x "
            f"{len(self.features)} features ({self.n_cells * 4 / 1e6:.1f} MB of float32)",
            f"  tasks     {len(self.tasks)}, each whole {'patches of a step' if self.mode == 'index' else 'fields'} "
            f"(up to {self.batch_size} block(s), at least one field)",
            f"  codecs    {len(self.codecs)}:",
        ]
        lines += [f"    {spec}  ->  {spec.folder}/" for spec in self.codecs]
        lines += [f"    t={b.t} y[{b.y0}:{b.y1}] x[{b.x0}:{b.x1}]" for b in self.blocks[:4]]
        if len(self.blocks) > 4:
            lines.append(f"    ... {len(self.blocks) - 4} more block(s)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "store": self.store, "fingerprint": self.fingerprint, "shape": list(self.shape),
            "features": list(self.features), "time_range": list(self.time_range), "mode": self.mode,
            "block_shape": list(self.block_shape), "reconstruction_chunks": list(self.reconstruction_chunks),
            "batch_size": self.batch_size, "codecs": [str(c) for c in self.codecs],
            "blocks": [asdict(b) for b in self.blocks], "fields": [asdict(b) for b in self.fields],
            "regions": [asdict(b) for b in self.regions], "field_metrics": self.field_metrics,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def parse_time_range(text: str | None, size: int) -> tuple[int, int]:
    """`"3"` -> (3, 4), `"2:5"` -> (2, 5), `":5"`, `"2:"`, None -> everything; checked against the store."""
    return parse_index_range(text, size, name="eval time", unit="time steps")


def grid_blocks(time_range: tuple[int, int], shape_yx: tuple[int, int], block: tuple[int, int]) -> list[Block]:
    """The block grid of every step in `time_range`, row by row (edge blocks are smaller)."""
    (n_y, n_x), (h, w) = shape_yx, block
    return [Block(t, y, min(y + h, n_y), x, min(x + w, n_x))
            for t in range(*time_range) for y in range(0, n_y, h) for x in range(0, n_x, w)]


def whole_fields(time_range: tuple[int, int], shape_yx: tuple[int, int]) -> list[Block]:
    return [Block(t, 0, shape_yx[0], 0, shape_yx[1]) for t in range(*time_range)]


def task_batches(blocks: list[Block], regions: list[Block], n_codecs: int, batch_size: int,
                 group_by_time: bool) -> list[CodingTask]:
    """Tasks of whole regions: every region of a step together (`group_by_time`, index mode), else
    consecutive regions while their blocks fit in `batch_size` (at least one region a task)."""
    blocks_of = _blocks_by_region(blocks, regions)
    batches: list[list[int]] = []
    for position, region in enumerate(regions):
        last = batches[-1] if batches else None
        if last is not None and (regions[last[0]].t == region.t if group_by_time
                                 else sum(len(blocks_of[r]) for r in last) + len(blocks_of[position]) <= batch_size):
            last.append(position)
        else:
            batches.append([position])
    return [CodingTask(codec, tuple(b for r in batch for b in blocks_of[r]), tuple(batch))
            for codec in range(n_codecs) for batch in batches]


def _blocks_by_region(blocks: list[Block], regions: list[Block]) -> list[tuple[int, ...]]:
    """Each region's blocks: the blocks equal to it (patches), else those it contains (a field's grid)."""
    position_of = {block: i for i, block in enumerate(blocks)}
    if all(region in position_of for region in regions):
        return [(position_of[region],) for region in regions]
    by_step: dict[int, list[int]] = {}
    for i, block in enumerate(blocks):
        by_step.setdefault(block.t, []).append(i)
    return [tuple(i for i in by_step.get(region.t, ()) if region.contains(blocks[i])) for region in regions]


def _index_blocks(config: EvalConfig, facts: EvalFacts, time_range: tuple[int, int]) -> list[Block]:
    """A fixed-seed sample of the index's patches (of one split) inside the time range."""
    from satflow.index.sampling import sample_random

    frame = facts.index_rows
    if frame is None:
        raise ValueError(f"eval.index is {config.index!r} but the store's facts hold no index rows: "
                         "scan them with scan_eval(store, config) for this config")
    if config.split is not None:
        if config.split not in set(frame["split"]):
            raise ValueError(f"{config.index}: no patch in split {config.split!r}; "
                             f"its splits: {', '.join(sorted(set(frame['split'])))}")
        frame = frame[frame["split"] == config.split]
    frame = frame[(frame["t"] >= time_range[0]) & (frame["t"] < time_range[1])]
    if frame.empty:
        raise ValueError(f"{config.index}: no patch inside time steps {time_range[0]}..{time_range[1] - 1}")
    sample = sample_random(frame, config.sample, seed=config.seed, per_split=False)
    blocks = [Block(int(r.t), int(r.y0), int(r.y0) + int(r.height), int(r.x0), int(r.x0) + int(r.width))
              for r in sample.itertuples()]
    wrapping = [b for b in blocks if b.x1 > facts.shape[3]]
    if wrapping:
        raise ValueError(f"{config.index}: {len(wrapping)} sampled patch(es) wrap around the longitude seam "
                         f"(e.g. x0={wrapping[0].x0}); evaluate the whole cube instead")
    return sorted(set(blocks), key=lambda b: (b.t, b.y0, b.x0, b.y1, b.x1))


def plan_eval(facts: EvalFacts, config: EvalConfig) -> EvalPlan:
    """Lay out blocks, codec specs and tasks over the store's facts; no I/O.

    Every codec spec is checked against its codec's parameter schema (no codec is built): a bad
    one raises CodecSpecError naming it. `satflow.eval.api.prepare_eval` scans and plans a store.
    """
    shape, chunk_yx = facts.shape, facts.chunks
    time_range = parse_time_range(config.time, shape[0])
    codecs = list(dict.fromkeys(CodecSpec.parse(c).with_checkpoint(config.checkpoint) for c in config.codecs))
    for spec in codecs:
        spec.check()
    if config.index:
        blocks = _index_blocks(config, facts, time_range)
        block_shape = blocks[0].shape
        regions = blocks
        reconstruction_chunks = chunk_yx
    else:
        block_shape = (config.block.lat or chunk_yx[0], config.block.lon or chunk_yx[1])
        blocks = grid_blocks(time_range, shape[2:], block_shape)
        regions = whole_fields(time_range, shape[2:])
        reconstruction_chunks = (min(block_shape[0], shape[2]), min(block_shape[1], shape[3]))
    tasks = task_batches(blocks, regions, len(codecs), config.batch_size, group_by_time=bool(config.index))
    return EvalPlan(facts.store, facts.fingerprint, shape, facts.features, time_range,
                    "index" if config.index else "cube", block_shape, reconstruction_chunks, blocks,
                    regions, codecs, tasks, config.batch_size, config.field_metrics)
