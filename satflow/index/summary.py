"""Human-readable summaries of an index file, and the leak check driven by its metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from satflow.index.geometry import PatchGrid
from satflow.index.io import StaleIndexError, read_index, verify_store
from satflow.index.splits import SPLITS, LeakReport, check_leaks


def check_index_leaks(path: str | Path, mode: str = "auto") -> LeakReport:
    """Leak check of an index file; mode 'auto' checks what its split mode promises."""
    frame = read_index(path, verify=False, columns=["patch_id", "t", "y0", "x0", "height", "width", "split"])
    metadata = frame.attrs["satflow"]
    if mode == "auto":
        mode = metadata["parameters"]["split"]["mode"]
    return check_leaks(frame, PatchGrid.from_dict(metadata["grid"]), mode)


def _store_status(metadata: dict, path: str | Path) -> str:
    try:
        verify_store(metadata, path)
    except StaleIndexError as err:
        return f"NOT USABLE: {err}"
    return "fingerprint {} matches".format(metadata["store"]["fingerprint"])


def _split_table(frame: pd.DataFrame) -> list[str]:
    lines = ["  split      rows  locations  times  mean valid"]
    for name in SPLITS:
        part = frame[frame["split"] == name]
        if len(part):
            lines.append(f"  {name:<7} {len(part):>7} {part['patch_id'].nunique():>10} {part['t'].nunique():>6}"
                         f"  {part['valid_frac'].mean():>10.3f}")
    return lines


def _optional_sections(frame: pd.DataFrame) -> list[str]:
    lines = []
    if "stratum" in frame.columns:
        counts = frame["stratum"].value_counts().sort_index()
        lines.append("strata (rows): " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    if "neighbor_patch_id" in frame.columns:
        lines.append(f"triplets: {len(frame)} anchors")
    if "sequence_id" in frame.columns:
        lengths = frame.groupby("sequence_id").size()
        lines.append(f"time windows: {lengths.size} sequences of {int(lengths.max())} steps")
    return lines


def summarize_index(path: str | Path) -> str:
    """A readable summary: store status, grid and parameters, rows per split, validity, extras."""
    frame = read_index(path, verify=False)
    metadata = frame.attrs["satflow"]
    grid, params = metadata["grid"], metadata["parameters"]
    valid = frame["valid_frac"].to_numpy() if len(frame) else np.array([np.nan])
    lines = [
        f"patch index {path}",
        f"  store: {metadata['store']['path']} ({_store_status(metadata, path)})",
        f"  grid {grid['ny']}x{grid['nx']}{' (global, patches wrap in longitude)' if grid['wrap'] else ''}; "
        f"patches {grid['height']}x{grid['width']}, stride {grid['stride_y']}",
        f"  filters: max_nodata_fraction {params['max_nodata_fraction']}, min_feature_valid_fraction "
        f"{params['min_feature_valid_fraction']}, time {params['time_start'] or '*'} .. {params['time_end'] or '*'}, "
        f"bbox {params['bbox'] or 'none'}",
        f"  split: {params['split']['mode']} mode, seed {params['split']['seed']}, "
        f"train/val/test {params['split']['train']}/{params['split']['val']}/{params['split']['test']}",
        f"  steps: {' -> '.join(step['step'] for step in metadata.get('history', []))}",
        f"rows: {len(frame)} ({frame['patch_id'].nunique()} locations x {frame['t'].nunique()} time steps); "
        f"valid_frac min/median/max {np.nanmin(valid):.3f}/{np.nanmedian(valid):.3f}/{np.nanmax(valid):.3f}",
        *_split_table(frame),
        *_optional_sections(frame),
    ]
    return "\n".join(lines)
