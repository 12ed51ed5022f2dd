"""The evaluation plan: plain data, printable with `--dry-run`, testable without a cluster.

`plan_eval(facts, config)` does no I/O: it lays the plan over `EvalFacts`, what `scan_eval`
(satflow.eval.scan) read of the store and index, so tests build facts by hand.

A plan crosses the store's blocks with codec specs. A block is one time step's `(feature, lat,
lon)` region, the unit one container codes: in cube mode the store's time range cut into a grid of
`block` cells (default: the store's chunk, so every read is chunk-aligned); in index mode a
fixed-seed sample of a patch index's patches. Tasks group blocks so that no two tasks ever write
the same chunk of a reconstruction store: in cube mode the reconstruction is chunked by the block
grid, so consecutive blocks of any batch size are safe; in index mode patches may straddle
chunks, so one task takes every sampled patch of a time step.
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


@dataclass(frozen=True)
class CodingTask:
    """One task: a batch of blocks (positions in `EvalPlan.blocks`) coded with one codec."""

    codec: int  # position in EvalPlan.codecs
    blocks: tuple[int, ...]


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
    fields: list[Block]  # regions whose whole-field metrics are computed (fields, or patches)
    codecs: list[CodecSpec]
    tasks: list[CodingTask] = field(repr=False)
    batch_size: int = 4

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
            f"  batches   {len(self.tasks)} task(s), up to {self.batch_size} block(s) each",
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
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def parse_time_range(text: str | None, size: int) -> tuple[int, int]:
    """`"3"` -> (3, 4), `"2:5"` -> (2, 5), `":5"`, `"2:"`, None -> everything; checked against the store."""
    return parse_index_range(text, size, name="eval time", unit="time steps")


def _grid_blocks(time_range: tuple[int, int], shape_yx: tuple[int, int], block: tuple[int, int]) -> list[Block]:
    (n_y, n_x), (h, w) = shape_yx, block
    return [Block(t, y, min(y + h, n_y), x, min(x + w, n_x))
            for t in range(*time_range) for y in range(0, n_y, h) for x in range(0, n_x, w)]


def task_batches(blocks: list[Block], n_codecs: int, batch_size: int, group_by_time: bool) -> list[CodingTask]:
    if group_by_time:
        groups: dict[int, list[int]] = {}
        for position, block in enumerate(blocks):
            groups.setdefault(block.t, []).append(position)
        batches = list(groups.values())
    else:
        batches = [list(range(i, min(i + batch_size, len(blocks)))) for i in range(0, len(blocks), batch_size)]
    return [CodingTask(codec, tuple(batch)) for codec in range(n_codecs) for batch in batches]


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
        fields = blocks
        reconstruction_chunks = chunk_yx
    else:
        block_shape = (config.block.lat or chunk_yx[0], config.block.lon or chunk_yx[1])
        blocks = _grid_blocks(time_range, shape[2:], block_shape)
        fields = [Block(t, 0, shape[2], 0, shape[3]) for t in range(*time_range)]
        reconstruction_chunks = (min(block_shape[0], shape[2]), min(block_shape[1], shape[3]))
    tasks = task_batches(blocks, len(codecs), config.batch_size, group_by_time=bool(config.index))
    return EvalPlan(facts.store, facts.fingerprint, shape, facts.features, time_range,
                    "index" if config.index else "cube", block_shape, reconstruction_chunks, blocks,
                    fields if config.field_metrics else [], codecs, tasks, config.batch_size)
