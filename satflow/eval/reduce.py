"""Reduced partials -> `metrics.json` entries and `metrics.parquet` rows.

One entry per codec: totals (bytes, bits per value overall and by container section, ratios,
throughput), `per_feature` lists in feature order (error metrics, then the whole-field ones),
the error histogram, the spectra and, when asked, the acceptance tests. The Parquet table has
one row per codec x feature (`t` = -1) and one per codec x feature x time step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from satflow.eval.fields import FieldSums, acceptance
from satflow.eval.options import EvalConfig
from satflow.eval.plan import EvalPlan
from satflow.eval.tasks import Partials
from satflow.metrics import merge_all

if TYPE_CHECKING:
    import pandas as pd

# Scalar per-feature metrics that go into the Parquet table (the lists of metrics.json, flattened).
TABLE_METRICS = ("count", "rmse", "nrmse", "mae", "bias", "max_abs_error", "max_rel_error", "rel_error_exceed_share",
                 "psnr", "pearson_r", "violations", "violation_share", "dssim", "error_lag1_autocorr", "spectral_error")


def spectral_error(ratio: list[list[float]]) -> list[float]:
    """Per feature, the mean of |log10(power ratio)| over wavenumber bins (0 = identical spectra)."""
    values = np.asarray(ratio, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.abs(np.log10(values))
    finite = np.isfinite(logs)
    return [float(row[ok].mean()) if ok.any() else float("nan") for row, ok in zip(logs, finite)]


def _by_codec(partials: dict, codec: int) -> dict[int, object]:
    return {t: value for (c, t), value in partials.items() if c == codec}


def _throughput(records: list[dict], codec: int) -> dict:
    coded = [r for r in records if r["task"] == "code" and r["codec"] == codec]
    encode_s = sum(r["encode_seconds"] for r in coded)
    decode_s = sum(r["decode_seconds"] for r in coded)
    encoded = sum(r["encoded_bytes"] for r in coded)
    decoded = sum(r["decoded_bytes"] for r in coded)
    return {
        "encode_seconds": encode_s, "decode_seconds": decode_s,
        "encode_mb_per_s": encoded / 1e6 / encode_s if encode_s > 0 else None,
        "decode_mb_per_s": decoded / 1e6 / decode_s if decode_s > 0 else None,
        "blocks_encoded": sum(r["encoded"] for r in coded), "blocks_resumed": sum(r["resumed"] for r in coded),
        "devices": sorted({r["device"] for r in coded}),
    }


def _field_metrics(fields: dict[int, FieldSums], features: tuple[str, ...]) -> dict | None:
    if not fields:
        return None
    return merge_all(list(fields.values())).finalize(features)


def codec_entry(plan: EvalPlan, config: EvalConfig, partials: Partials, codec: int, folder: str) -> dict:
    """The metrics.json entry of one codec."""
    spec = plan.codecs[codec]
    errors = merge_all(list(_by_codec(partials.errors, codec).values())).finalize(plan.features)
    field = _field_metrics(_by_codec(partials.fields, codec), plan.features)
    per_feature = dict(errors["per_feature"])
    entry = {"codec": str(spec), "name": spec.name, "params": spec.params, "dir": folder,
             "n_blocks": len(plan.blocks), **{k: v for k, v in errors.items() if k != "per_feature"},
             **_throughput(partials.records, codec)}
    if field is not None:
        per_feature.update(field["per_feature"])
        per_feature["spectral_error"] = spectral_error(field["per_feature"]["spectral_ratio"])
        entry["wavenumber"] = field["wavenumber"]
    entry["per_feature"] = per_feature
    if config.acceptance.enabled:
        no_fields = {"per_feature": {"dssim": [float("nan")] * len(plan.features)}}  # DSSIM unmeasured: fails
        entry["acceptance"] = acceptance(errors, field or no_fields,
                                         thresholds=config.acceptance.model_dump(exclude={"enabled"}))
    return entry


def _rows(codec: str, features: tuple[str, ...], t: int, time, per_feature: dict) -> list[dict]:
    rows = []
    for f, name in enumerate(features):
        row = {"codec": codec, "feature": name, "t": t, "time": time}
        row.update({metric: per_feature[metric][f] for metric in TABLE_METRICS if metric in per_feature})
        rows.append(row)
    return rows


def metrics_frame(plan: EvalPlan, entries: list[dict], partials: Partials, times: np.ndarray) -> pd.DataFrame:
    """One row per codec x feature (t = -1, time NaT) and per codec x feature x time step.

    `time` is a timestamp, or ISO text for cftime dates (a climatology's year 0 has no timestamp).
    """
    import pandas as pd  # here: the run's main process needs it only for this table

    if not np.issubdtype(np.asarray(times).dtype, np.datetime64):
        times = np.array([t.isoformat() for t in times], dtype=object)
    rows = []
    for codec, entry in enumerate(entries):
        rows += _rows(entry["codec"], plan.features, -1, None, entry["per_feature"])
        errors, fields = _by_codec(partials.errors, codec), _by_codec(partials.fields, codec)
        for t in sorted(errors):
            per_feature = errors[t].finalize(plan.features)["per_feature"]
            if t in fields:
                field = fields[t].finalize(plan.features)["per_feature"]
                per_feature.update(field, spectral_error=spectral_error(field["spectral_ratio"]))
            step_rows = _rows(entry["codec"], plan.features, t, times[t - plan.time_range[0]], per_feature)
            bits = errors[t].finalize()["bits_per_value"]
            rows += [{**row, "bits_per_value": bits} for row in step_rows]
    frame = pd.DataFrame(rows)
    frame.loc[frame["t"] == -1, "bits_per_value"] = frame.loc[frame["t"] == -1, "codec"].map(
        {e["codec"]: e["bits_per_value"] for e in entries})
    for column in ("violations", "violation_share"):  # None (no bound) becomes NaN in a numeric column
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame
