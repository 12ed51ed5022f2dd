"""What a report reads: the evaluation directory (metrics.json, plan.json, manifest.json), the
features and time steps it is asked for, and the 2-D slices of the stores its maps show."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_FEATURES = ("tmbrs-1", "tmbrs-8", "tmbrs-15")  # AMSU-A channels 1, 8 and 15


class ReportError(ValueError):
    """A directory that is not a finished evaluation, or a selection it does not hold."""


@dataclass(frozen=True)
class Evaluation:
    path: Path
    entries: list[dict]
    plan: dict
    manifest: dict

    @property
    def features(self) -> list[str]:
        return list(self.entries[0]["features"]) if self.entries else list(self.plan.get("features", []))

    @property
    def n_steps(self) -> int:
        t0, t1 = self.plan["time_range"]
        return int(t1) - int(t0)


def load_evaluation(eval_dir: str | Path) -> Evaluation:
    path = Path(eval_dir)
    metrics = path / "metrics.json"
    if not metrics.is_file():
        raise ReportError(f"{path}: no evaluation here (metrics.json is missing); "
                          f"run `satflow eval STORE --codec SPEC --out {path}` first")
    entries = json.loads(metrics.read_text())
    if not entries:
        raise ReportError(f"{metrics}: no codec entries; re-run `satflow eval` with at least one --codec")
    if not (path / "plan.json").is_file():
        raise ReportError(f"{path}: metrics.json without plan.json; re-run the same `satflow eval` to rewrite both")
    return Evaluation(path, entries, _read_json(path / "plan.json"), _read_json(path / "manifest.json"))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def find_entry(evaluation: Evaluation, codec: str) -> dict:
    """The metrics.json entry named by its spec (any parameter order), its folder, or its unique codec name."""
    wanted = {codec, _normalised_spec(codec)}
    matches = [e for e in evaluation.entries if e["codec"] in wanted or e["dir"] == codec]
    if not matches:
        matches = [e for e in evaluation.entries if e["name"] == codec]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(e["codec"] for e in evaluation.entries)
    problem = "several codecs are" if matches else "no codec is"
    raise ReportError(f"{evaluation.path}: {problem} named {codec!r}; choose one spec or folder of: {choices}")


def _normalised_spec(text: str) -> str:
    from satflow.codecs.spec import CodecSpec

    try:
        return str(CodecSpec.parse(text))
    except (ValueError, TypeError):
        return text


def floats(values: Sequence) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def per_feature(entry: dict, metric: str) -> list:
    return entry["per_feature"].get(metric) or []


def choose_features(evaluation: Evaluation, features: Sequence[str] | None) -> list[str]:
    """The asked features (checked), else those of AMSU-A channels 1, 8, 15 present, else first, middle, last."""
    available = evaluation.features
    if features:
        unknown = [f for f in features if f not in available]
        if unknown:
            raise ReportError(f"{evaluation.path}: unknown feature(s) {', '.join(unknown)}; "
                              f"the evaluation has: {', '.join(available)}")
        return list(dict.fromkeys(features))
    present = [f for f in DEFAULT_FEATURES if f in available]
    if present:
        return present
    return list(dict.fromkeys(available[i] for i in (0, len(available) // 2, len(available) - 1)))


def choose_times(evaluation: Evaluation, times: Sequence[int] | None) -> list[int]:
    """Time steps of the evaluation (0 = its first step); default the first."""
    chosen = list(dict.fromkeys(int(t) for t in times)) if times else [0]
    outside = [t for t in chosen if not 0 <= t < evaluation.n_steps]
    if outside:
        raise ReportError(f"{evaluation.path}: time step(s) {outside} are outside the evaluation's "
                          f"{evaluation.n_steps} steps; give --time 0..{evaluation.n_steps - 1}")
    return chosen


@dataclass(frozen=True)
class Field2D:
    values: np.ndarray
    lat: np.ndarray
    lon: np.ndarray


def read_field(store: str | Path, t: int, feature: str) -> Field2D:
    """One (lat, lon) slice of X, read lazily (only the chunks that hold it)."""
    from satflow.store import open_store

    ds = open_store(store)
    values = ds["X"].isel(time=t).sel(feature=feature).values
    return Field2D(np.asarray(values, dtype=np.float32), ds["lat"].values, ds["lon"].values)


def read_compressed_field(compressed: str | Path, original: Field2D, t_store: int, feature: str) -> Field2D:
    """Step `t_store` of the input, decoded from a codec's compressed store: only the chunks that
    hold it (cube mode), or that step's patches pasted onto a NaN field (index mode)."""
    import xarray as xr

    from satflow.eval.stores import FORMAT

    ds = xr.open_zarr(str(compressed))
    if ds.attrs.get("satflow_compressed") != FORMAT:
        raise ReportError(f"{compressed}: written by an older satflow; rerun the same `satflow eval` with "
                          "--overwrite to rewrite it")
    if ds.attrs["mode"] != "index":
        t_local = t_store - int(ds.attrs["time_range"][0])
        return Field2D(np.asarray(ds["X"].isel(time=t_local).sel(feature=feature).values, np.float32),
                       original.lat, original.lon)
    values = np.full(original.values.shape, np.nan, np.float32)
    patches = np.flatnonzero(ds["t"].values == t_store)
    if patches.size:
        decoded = ds["X"].isel(patch=patches).sel(feature=feature).values
        for patch, block in zip(patches, decoded):
            y0, x0 = int(ds["y0"].values[patch]), int(ds["x0"].values[patch])
            values[y0:y0 + block.shape[0], x0:x0 + block.shape[1]] = block
    return Field2D(values, original.lat, original.lon)


def read_map_fields(evaluation: Evaluation, feature: str, t: int) -> tuple[Field2D, list[Field2D]]:
    """Evaluated step t of the original (its step time_range[0] + t) and of each codec's
    reconstruction, decoded from its compressed store."""
    t_store = int(evaluation.plan["time_range"][0]) + t
    original = read_field(evaluation.plan["store"], t_store, feature)
    return original, [read_compressed_field(evaluation.path / e["dir"] / "compressed.zarr", original, t_store, feature)
                      for e in evaluation.entries]


def time_labels(evaluation: Evaluation) -> list[str]:
    from satflow.store import open_store

    t0, t1 = (int(t) for t in evaluation.plan["time_range"])
    times = open_store(evaluation.plan["store"])["time"].values[t0:t1]
    if np.issubdtype(times.dtype, np.datetime64):
        return [str(label) for label in np.datetime_as_string(times, unit="m")]
    return [str(t) for t in times]  # cftime dates (climatologies from year 0)
