"""The metrics table: one row per codec, errors summarised by the worst feature."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from satflow.eval.report.document import Table
from satflow.eval.report.load import floats, per_feature


def _worst(values: Sequence, reduce: Callable) -> float | None:
    """max (errors) or min (scores) over features, ignoring NaN (not inf: a lossless PSNR); None if all NaN."""
    array = floats(values)
    known = array[~np.isnan(array)]
    return float(reduce(known)) if known.size else None


def _violations(entry: dict) -> int | None:
    counts = [v for v in per_feature(entry, "violations") if v is not None]
    return int(sum(counts)) if counts else None


def _acceptance(entry: dict) -> str | None:
    passed = (entry.get("acceptance") or {}).get("pass")
    return None if passed is None else f"{sum(passed)}/{len(passed)}"


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[dict], object]
    digits: int = 4


# Errors are summarised by the worst feature (largest error, lowest score): one bad channel
# must not hide behind good averages.
COLUMNS = (
    Column("codec", lambda e: e["codec"]),
    Column("bits/value", lambda e: e["bits_per_value"]),
    Column("ratio", lambda e: e["compression_ratio"]),
    Column("ratio vs source", lambda e: e.get("compression_ratio_vs_source")),
    Column("RMSE (max)", lambda e: _worst(per_feature(e, "rmse"), np.max)),
    Column("NRMSE (max)", lambda e: _worst(per_feature(e, "nrmse"), np.max)),
    Column("max |error|", lambda e: _worst(per_feature(e, "max_abs_error"), np.max)),
    Column("PSNR dB (min)", lambda e: _worst(per_feature(e, "psnr"), np.min)),
    Column("Pearson r (min)", lambda e: _worst(per_feature(e, "pearson_r"), np.min), digits=7),
    Column("DSSIM (min)", lambda e: _worst(per_feature(e, "dssim"), np.min), digits=6),
    Column("violations", _violations),
    Column("encode MB/s", lambda e: e.get("encode_mb_per_s")),
    Column("decode MB/s", lambda e: e.get("decode_mb_per_s")),
)


ACCEPTANCE_COLUMN = Column("acceptance pass", _acceptance)


def format_value(value: object, digits: int = 4) -> str:
    """How the report prints a number: `digits` significant digits; '-' for missing or NaN; 'inf' stays."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}g}"


def table_columns(entries: list[dict]) -> tuple[Column, ...]:
    return COLUMNS + ((ACCEPTANCE_COLUMN,) if any("acceptance" in e for e in entries) else ())


def metrics_table(entries: list[dict]) -> Table:
    columns = table_columns(entries)
    rows = [[format_value(c.value(entry), c.digits) for c in columns] for entry in entries]
    return Table([c.header for c in columns], rows)
