"""`plan_compress`: from the input store's facts (`satflow.compress.scan`) and the `compress:` options, the
chunk shape of the compressed store and its regions. Pure: no file, no store, no client.

A region is one time chunk of the compressed store with every chunk of it in lat, lon and feature: one
task reads it from the input once, writes its chunks through the codec and flags its steps done
(`ingested`, chunked like X in time, so no two tasks ever write the same chunk of any array).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from satflow.codecs.spec import CodecSpec
from satflow.compress.options import CompressConfig

DIMS = ("time", "feature", "lat", "lon")
COMPRESSED_ATTR = "satflow_compress"  # the compressed store's record: codec, source, summary


class CompressError(ValueError):
    """`satflow compress` cannot start: no codec, a bad chunk shape, or an --out that is another store."""


@dataclass(frozen=True)
class OutputFacts:
    """What an existing --out holds: its compress record (None: not a compressed store) and done steps."""

    record: dict | None
    chunks: tuple[int, ...] = ()
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))


@dataclass(frozen=True)
class CompressFacts:
    store: str
    fingerprint: str
    shape: tuple[int, int, int, int]
    chunks: tuple[int, int, int, int]  # the input's X chunks
    features: tuple[str, ...]
    out: str
    existing: OutputFacts | None = None  # None: --out does not exist


@dataclass(frozen=True)
class Region:
    """Time steps [t0, t1) of the compressed store: one time chunk, every chunk of it."""

    t0: int
    t1: int


@dataclass(frozen=True)
class CompressPlan:
    store: str
    fingerprint: str
    out: str
    codec: str  # the spec, canonical text
    shape: tuple[int, int, int, int]
    chunks: tuple[int, int, int, int]
    features: tuple[str, ...]
    pending: tuple[Region, ...]  # to code
    done: tuple[Region, ...]  # coded by an earlier run: measured again, not recoded
    mode: str = "create"  # create | resume

    @property
    def n_bytes(self) -> int:
        """float32 bytes of the regions a run touches (pending ones coded, done ones measured again)."""
        step_bytes = int(np.prod(self.shape[1:])) * 4
        return sum(r.t1 - r.t0 for r in self.pending + self.done) * step_bytes

    def describe(self) -> str:
        n_chunks = int(np.prod([-(-n // c) for n, c in zip(self.shape, self.chunks)]))
        return "\n".join([
            f"compress plan ({self.mode}) {self.store} -> {self.out}",
            f"  codec     {self.codec} (X through satflow.{self.codec.partition(':')[0]}; M lossless)",
            f"  shape     {dict(zip(DIMS, self.shape))}",
            f"  chunks    {dict(zip(DIMS, self.chunks))} ({n_chunks} chunks of X)",
            f"  regions   {len(self.pending)} to code, {len(self.done)} done before (one task each)",
        ])


def plan_compress(facts: CompressFacts, config: CompressConfig) -> CompressPlan:
    """The compressed store's chunks and regions; an existing --out must be this same compression."""
    if config.codec is None:
        raise CompressError("no codec: give --codec SPEC (e.g. sz3:tol=0.5) or set compress.codec")
    spec = str(CodecSpec.parse(config.codec).check())
    chunks = chunk_shape(facts.shape, facts.chunks, config)
    regions = [Region(t0, min(t0 + chunks[0], facts.shape[0])) for t0 in range(0, facts.shape[0], chunks[0])]
    existing = facts.existing
    if existing is None:
        return CompressPlan(facts.store, facts.fingerprint, facts.out, spec, facts.shape, chunks, facts.features,
                            tuple(regions), ())
    check_resumable(facts, spec, chunks)
    done = [r for r in regions if np.all(existing.done[r.t0:r.t1] == 1)]
    pending = [r for r in regions if r not in done]
    return CompressPlan(facts.store, facts.fingerprint, facts.out, spec, facts.shape, chunks, facts.features,
                        tuple(pending), tuple(done), mode="resume")


def chunk_shape(shape: tuple[int, ...], input_chunks: tuple[int, ...], config: CompressConfig) -> tuple[int, ...]:
    """The input's chunks, with the dimensions `compress.chunks` sets replaced (clipped to the shape)."""
    wanted = config.chunks.model_dump()
    return tuple(min(wanted[dim] or chunk, size) or 1 for dim, chunk, size in zip(DIMS, input_chunks, shape))


def check_resumable(facts: CompressFacts, spec: str, chunks: tuple[int, ...]) -> None:
    """An existing --out is resumed only when it is this compression of this store; else say what differs."""
    existing, out = facts.existing, facts.out
    advice = "pass --overwrite to replace it, or choose another --out"
    if existing.record is None:
        raise CompressError(f"{out}: exists and is not a store written by `satflow compress`; {advice}")
    differences = [(what, was, now) for what, was, now in [
        ("source store fingerprint", existing.record.get("source_fingerprint"), facts.fingerprint),
        ("codec", existing.record.get("codec"), spec),
        ("chunks", list(existing.chunks), list(chunks)),
    ] if was != now]
    if differences:
        described = "; ".join(f"{what} {was} there, {now} now" for what, was, now in differences)
        raise CompressError(f"{out}: exists and holds another compression ({described}); {advice}")
