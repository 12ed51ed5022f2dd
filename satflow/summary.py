"""`satflow inspect`: what is in a store, how big it is, how complete, and where it came from.

`summarize_store` returns plain JSON-able data; `format_summary` renders it as readable tables.
Everything except the quantiles comes from metadata and the small per-feature / per-step
statistics arrays the ingest already wrote, so inspecting a terabyte store reads kilobytes.
Quantiles need values: they come from a bounded, seeded uniform subsample of valid points drawn
from a fixed selection of chunks read one at a time, and are reported as approximate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import zarr

from satflow.sources.timecodec import iso_times
from satflow.store import DIMS, open_group, open_store

QUANTILE_LEVELS = (0.01, 0.05, 0.50, 0.95, 0.99)
DEFAULT_SAMPLE_POINTS = 100_000  # per feature; quantile error ~ 1/sqrt(points) in rank
DEFAULT_SAMPLE_CHUNKS = 32  # chunk positions read for quantiles (bounds I/O on huge stores)
SAMPLE_SEED = 0
_SPARK = "▁▂▃▄▅▆▇█"


def summarize_store(
    path: str | Path,
    *,
    sample_points: int = DEFAULT_SAMPLE_POINTS,
    sample_chunks: int = DEFAULT_SAMPLE_CHUNKS,
) -> dict:
    """Summarise a satflow store as JSON-able data.

    Keys: `path`, `shape` (per dimension), `complete`, `ingested_steps`, `finalised`,
    `arrays` (dims, shape, dtype, chunks, shards, stored bytes per array), `size` (totals and the
    ratio of X as float32 to the whole store on disk), `features` (valid fraction, count, mean,
    std, min, max and approximate quantiles), `quantiles` (how they were sampled), `time_steps`
    (per step: time, valid fraction overall and per feature, source file, ingested) and
    `provenance` (satflow version, config, fingerprint, number of source files).
    """
    group = open_group(path)  # raises StoreError naming the path when it is not a store
    ds = open_store(path)
    n_time, n_feature, n_lat, n_lon = group["X"].shape
    ingested = np.asarray(group["ingested"][:]).astype(bool)
    step_count = np.asarray(group["step_count"][:])
    features = [str(name) for name in ds["feature"].values]
    arrays = _array_table(group)
    stored = sum(entry["stored_bytes"] for entry in arrays.values())
    raw_float32 = n_time * n_feature * n_lat * n_lon * 4
    quantiles, sampled = _sample_quantiles(group["X"], sample_points, sample_chunks)
    return {
        "path": str(path),
        "shape": dict(zip(DIMS, (n_time, n_feature, n_lat, n_lon))),
        "complete": bool(ingested.all()),
        "ingested_steps": int(ingested.sum()),
        "finalised": bool(group.attrs.get("satflow_fingerprint")),
        "arrays": arrays,
        "size": {
            "stored_bytes": stored,
            "x_float32_bytes": raw_float32,
            "ratio_vs_float32": raw_float32 / stored if stored else None,
        },
        "features": _feature_table(group, features, step_count, ingested, n_lat * n_lon, quantiles),
        "quantiles": {
            "approximate": True,
            "levels": list(QUANTILE_LEVELS),
            "points_per_feature": {name: int(n) for name, n in zip(features, sampled["points"])},
            "chunks_read": sampled["chunks_read"],
            "chunks_total": sampled["chunks_total"],
            "seed": SAMPLE_SEED,
        },
        "time_steps": _time_table(ds, group, features, step_count, ingested, n_lat * n_lon),
        "provenance": _provenance(group),
    }


# --- arrays and sizes ---------------------------------------------------------------------------
def _array_table(group: zarr.Group) -> dict[str, dict]:
    table = {}
    for name, array in sorted(group.arrays(), key=lambda item: (item[0] not in ("X", "M"), item[0])):
        table[name] = {
            "dims": list(array.metadata.dimension_names or ()),
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "chunks": list(array.chunks),
            "shards": list(array.shards) if array.shards else None,
            "stored_bytes": int(array.nbytes_stored()),
            "nbytes": int(array.nbytes),
        }
    return table


# --- per-feature statistics ---------------------------------------------------------------------
def _feature_table(group, features, step_count, ingested, cells_per_step, quantiles) -> list[dict]:
    stats = {name: np.asarray(group[name][:]) for name in ("count", "mean", "std", "min", "max")}
    valid_counts = step_count[ingested].sum(axis=0) if ingested.any() else np.zeros(len(features), np.int64)
    cells = int(ingested.sum()) * cells_per_step
    rows = []
    for i, name in enumerate(features):
        rows.append({
            "name": name,
            "valid_fraction": float(valid_counts[i]) / cells if cells else None,
            "count": int(stats["count"][i]),
            **{key: _finite_or_none(stats[key][i]) for key in ("mean", "std", "min", "max")},
            "quantiles": {_level_key(q): _finite_or_none(v) for q, v in zip(QUANTILE_LEVELS, quantiles[i])},
        })
    return rows


def _level_key(level: float) -> str:
    return f"{level * 100:g}%"


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


# --- approximate quantiles ----------------------------------------------------------------------
def _sample_quantiles(x: zarr.Array, points: int, max_chunks: int) -> tuple[np.ndarray, dict]:
    """Quantiles per feature from a uniform random subsample of the valid points in some chunks.

    Chunk positions (time, lat, lon) are drawn with a fixed seed; each is read with all features,
    one at a time. Every valid value gets a seeded random key and the `points` smallest keys are
    kept (bottom-k sampling): a uniform sample without replacement in bounded memory.
    """
    n_feature = x.shape[1]
    all_positions = _chunk_positions(x)
    rng = np.random.default_rng(SAMPLE_SEED)
    positions = all_positions
    if len(positions) > max_chunks:
        positions = [positions[i] for i in np.sort(rng.choice(len(positions), max_chunks, replace=False))]
    kept = [(np.empty(0, np.float32), np.empty(0)) for _ in range(n_feature)]
    for selection in positions:
        block = np.asarray(x[selection])  # (t, feature, lat, lon)
        for f in range(n_feature):
            values = block[:, f].ravel()
            values = values[np.isfinite(values)]
            kept[f] = _keep_smallest_keys(kept[f], values, rng.random(values.size), points)
    quantiles = np.array([
        np.quantile(values, QUANTILE_LEVELS) if values.size else np.full(len(QUANTILE_LEVELS), np.nan)
        for values, _ in kept
    ])
    return quantiles, {
        "points": [values.size for values, _ in kept],
        "chunks_read": len(positions),
        "chunks_total": len(all_positions),
    }


def _chunk_positions(x: zarr.Array) -> list[tuple[slice, slice, slice, slice]]:
    """Chunk-aligned selections over (time, lat, lon), each spanning all features."""
    (n_t, _, n_y, n_x), (c_t, _, c_y, c_x) = x.shape, x.chunks
    return [
        (slice(t, min(t + c_t, n_t)), slice(None), slice(y, min(y + c_y, n_y)), slice(s, min(s + c_x, n_x)))
        for t in range(0, n_t, c_t)
        for y in range(0, n_y, c_y)
        for s in range(0, n_x, c_x)
    ]


def _keep_smallest_keys(kept, values, keys, limit):
    values = np.concatenate([kept[0], values])
    keys = np.concatenate([kept[1], keys])
    if values.size <= limit:
        return values, keys
    smallest = np.argpartition(keys, limit - 1)[:limit]
    return values[smallest], keys[smallest]


# --- time steps and provenance ------------------------------------------------------------------
def _time_table(ds, group, features, step_count, ingested, cells_per_step) -> list[dict]:
    times = iso_times(ds["time"].values)  # any calendar, year 0 included
    sources = [str(name) for name in np.asarray(group["source_file"][:])]
    per_feature = step_count / cells_per_step
    overall = step_count.sum(axis=1) / (cells_per_step * len(features))
    return [
        {
            "time": str(times[t]),
            "valid_fraction": float(overall[t]),
            "valid_fraction_by_feature": dict(zip(features, map(float, per_feature[t]))),
            "source_file": sources[t],
            "ingested": bool(ingested[t]),
        }
        for t in range(len(times))
    ]


def _provenance(group: zarr.Group) -> dict:
    attrs = dict(group.attrs)
    config = attrs.get("satflow_config")
    try:
        config = json.loads(config) if isinstance(config, str) else config
    except json.JSONDecodeError:
        pass  # keep the raw text: still useful to a reader
    sources = [str(name) for name in np.asarray(group["source_file"][:]) if str(name)]
    return {
        "satflow_version": attrs.get("satflow_version"),
        "fingerprint": attrs.get("satflow_fingerprint"),
        "conventions": attrs.get("Conventions"),
        "source_files": len(set(sources)),
        "config": config,
    }


# --- text rendering -----------------------------------------------------------------------------
def format_summary(summary: dict, *, max_step_rows: int = 24) -> str:
    """Render `summarize_store`'s output as readable tables (long time series are condensed)."""
    sections = [
        _format_header(summary),
        _format_arrays(summary),
        _format_features(summary),
        _format_steps(summary, max_step_rows),
        _format_provenance(summary),
    ]
    return "\n\n".join(sections)


def _format_header(summary: dict) -> str:
    shape = summary["shape"]
    steps = summary["time_steps"]
    size = summary["size"]
    state = "complete"
    if not summary["complete"]:
        state = (f"INCOMPLETE ({summary['ingested_steps']}/{shape['time']} steps ingested; "
                 "re-run `satflow ingest` to finish)")
    span = f"{steps[0]['time']} .. {steps[-1]['time']}" if steps else "no time steps"
    ratio = f"{size['ratio_vs_float32']:.2f}x" if size["ratio_vs_float32"] else "n/a"
    return "\n".join([
        f"store    {summary['path']}",
        "shape    " + " x ".join(f"{dim} {n}" for dim, n in shape.items()),
        f"time     {span}",
        f"status   {state}" + ("" if summary["finalised"] else "; statistics not finalised"),
        f"size     {format_bytes(size['stored_bytes'])} on disk; X as float32 would be "
        f"{format_bytes(size['x_float32_bytes'])} (ratio {ratio})",
    ])


def _format_arrays(summary: dict) -> str:
    rows = []
    other = {"stored": 0, "count": 0}
    for name, info in summary["arrays"].items():
        if name in ("X", "M"):
            shards = "x".join(map(str, info["shards"])) if info["shards"] else "-"
            ratio = info["nbytes"] / info["stored_bytes"] if info["stored_bytes"] else float("nan")
            rows.append([name, info["dtype"], "x".join(map(str, info["shape"])), "x".join(map(str, info["chunks"])),
                         shards, format_bytes(info["stored_bytes"]), f"{ratio:.2f}x"])
        else:
            other["stored"] += info["stored_bytes"]
            other["count"] += 1
    rows.append([f"{other['count']} others", "", "coords, statistics, provenance", "", "",
                 format_bytes(other["stored"]), ""])
    return _table(["array", "dtype", "shape", "chunks", "shards", "on disk", "ratio"], rows)


def _format_features(summary: dict) -> str:
    q = summary["quantiles"]
    levels = [_level_key(level) for level in q["levels"]]
    rows = [
        [row["name"], _pct(row["valid_fraction"]), str(row["count"]),
         *(_num(row[key]) for key in ("mean", "std", "min", "max")),
         *(_num(row["quantiles"][level]) for level in levels)]
        for row in summary["features"]
    ]
    points = sorted(set(q["points_per_feature"].values()))
    note = (f"quantiles are approximate: a seeded uniform sample of up to {points[-1] if points else 0} valid points "
            f"per feature from {q['chunks_read']} of {q['chunks_total']} chunk positions")
    header = ["feature", "valid", "count", "mean", "std", "min", "max", *(f"q{level}" for level in levels)]
    return _table(header, rows) + "\n" + note


def _format_steps(summary: dict, max_rows: int) -> str:
    steps = summary["time_steps"]
    if not steps:
        return "missing data per time step: none (empty store)"
    fractions = np.array([step["valid_fraction"] for step in steps])
    title = "valid fraction per time step (all features)"
    if len(steps) <= max_rows:
        rows = [[step["time"], _pct(step["valid_fraction"]), "yes" if step["ingested"] else "NO",
                 step["source_file"]] for step in steps]
        return title + "\n" + _table(["time", "valid", "ingested", "source file"], rows)
    worst = np.argsort(fractions, kind="stable")[:5]
    median = float(np.median(fractions))
    lines = [
        f"{title}: min {_pct(fractions.min())}, median {_pct(median)}, max {_pct(fractions.max())}",
        "  " + _sparkline(fractions, width=64) + f"  ({len(steps)} steps, left to right)",
        "  emptiest: " + ", ".join(f"{steps[i]['time']} {_pct(fractions[i])}" for i in worst),
    ]
    missing = [step["time"] for step in steps if not step["ingested"]]
    if missing:
        lines.append(f"  not ingested: {len(missing)} steps, first {missing[0]}")
    return "\n".join(lines)


def _format_provenance(summary: dict) -> str:
    prov = summary["provenance"]
    steps = summary["time_steps"]
    lines = [
        "provenance",
        f"  satflow {prov['satflow_version']}, fingerprint {prov['fingerprint'] or '(not finalised)'}",
        f"  {prov['source_files']} distinct source files"
        + (f", first {steps[0]['source_file']}, last {steps[-1]['source_file']}" if steps else ""),
    ]
    config = prov["config"]
    if isinstance(config, dict):
        lines.append("  config sections: " + ", ".join(sorted(config)) + " (full config: --json)")
    elif config:
        lines.append(f"  config: {str(config)[:200]}")
    return "\n".join(lines)


def _sparkline(values: np.ndarray, width: int) -> str:
    """Mean of each of `width` consecutive groups of steps, drawn on a 0..1 scale."""
    groups = np.array_split(values, min(width, len(values)))
    levels = [min(int(group.mean() * len(_SPARK)), len(_SPARK) - 1) for group in groups]
    return "".join(_SPARK[level] for level in levels)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
             for line in (header, *rows)]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_bytes(n: float) -> str:
    """A byte count for people: 512 B, 1.5 KiB, 2.0 GiB."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    power = 0
    while n >= 1024 and power < len(units) - 1:
        n /= 1024
        power += 1
    return f"{n:.0f} B" if power == 0 else f"{n:.1f} {units[power]}"


def _pct(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
