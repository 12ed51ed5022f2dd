"""Export indexed patches as files for other tools: NPZ (the users' X/M layout) or GeoTIFF.

NPZ, one file per index row: `X` float32 (1, feature, lat, lon) with NaN where invalid, `M` uint8,
`feature_names`, `lat`, `lon` (cell centres, store order: latitude ascending), `time`
(datetime64[ns], shape (1,)), `mean`, `std` (the store's per-feature statistics), `patch_id`.
GeoTIFF (needs the optional extra `satflow[geotiff]`, i.e. rasterio): one band per feature,
EPSG:4326, geotransform from the patch bounds, north up, NaN nodata. A wrapped patch keeps
continuous longitudes (its east edge may exceed 180).
On a local domain (a store ingested with `ingest.source.domain`) NPZ `lat`/`lon` are 2-D (lat, lon)
and `y_m`, `x_m` (cell centres in metres) and `crs_wkt` are added; a GeoTIFF is in the domain's
projection, its geotransform from the patch bounds in metres.
A `manifest.csv` lists every file with its index row.
With `groups` (name -> fnmatch patterns over feature names, as `PatchDataset(groups=...)`), each row
gives one file per group, `<out>/<group>/<patch>_<time>.<ext>`, with the same basename for pairing
(DepthDif's `argo/` and `ostia/` GeoTIFFs); `manifest.csv` has a `<group>_path` column per group
instead of `path`, and `manifest.json` lists the store, the format, each group's features and per
patch its id, split, time and files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from satflow.index.reader import PatchReader

FORMATS = ("npz", "geotiff")


def _file_stem(row) -> str:
    return f"{row.patch_id}_{pd.Timestamp(row.time):%Y%m%dT%H%M}"


def write_npz(path: Path, x: np.ndarray, reader: PatchReader, row, stats: dict, names: list[str] | None = None) -> None:
    """One patch in the users' NPZ layout (no pickled objects: loads with allow_pickle=False); `names` are the
    features of `x` (default: the reader's) and `stats` theirs."""
    where = (int(row.y0), int(row.x0), int(row.height), int(row.width))
    if reader.domain is None:
        lat, lon = reader.coords(*where)
        coords = {"lat": lat, "lon": lon}
    else:
        coords = {**reader.domain_coords(*where), "crs_wkt": np.asarray(reader.domain.grid_mapping["crs_wkt"])}
    np.savez_compressed(
        path, X=x[None], M=np.isfinite(x)[None].astype(np.uint8),
        feature_names=np.asarray(names or reader.features, dtype=str), **coords,
        time=np.asarray([np.datetime64(pd.Timestamp(row.time), "ns")]), mean=stats["mean"], std=stats["std"],
        patch_id=np.asarray(str(row.patch_id)),
    )


def _rasterio():
    try:
        import rasterio
    except ImportError as err:
        raise ImportError("GeoTIFF export needs rasterio: pip install 'satflow[geotiff]' "
                          "(or use --format npz)") from err
    return rasterio


def write_geotiff(path: Path, x: np.ndarray, reader: PatchReader, row, names: list[str] | None = None) -> None:
    """One patch as a north-up GeoTIFF (EPSG:4326, or the domain's projection) with one band per feature and NaN
    nodata."""
    rasterio = _rasterio()
    from rasterio.transform import from_bounds

    if reader.domain is None:
        lat, _ = reader.coords(int(row.y0), int(row.x0), int(row.height), int(row.width))
        west = float(row.lon0)
        east = west + ((float(row.lon1) - west) % 360.0 or 360.0)  # continuous across the dateline
        crs, bounds, south_first = "EPSG:4326", (west, float(row.lat0), east, float(row.lat1)), lat[0] < lat[-1]
    else:  # y ascends (south to north) on a domain
        from rasterio.crs import CRS

        crs = CRS.from_wkt(reader.domain.grid_mapping["crs_wkt"])
        bounds, south_first = (float(row.x_min_m), float(row.y_min_m), float(row.x_max_m), float(row.y_max_m)), True
    transform = from_bounds(*bounds, x.shape[2], x.shape[1])
    north_up = x[:, ::-1, :] if south_first else x
    profile = dict(driver="GTiff", height=x.shape[1], width=x.shape[2], count=x.shape[0], dtype="float32",
                   crs=crs, transform=transform, nodata=np.nan, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ascontiguousarray(north_up, dtype=np.float32))
        for band, name in enumerate(names or reader.features, start=1):
            dst.set_band_description(band, name)
        dst.update_tags(patch_id=str(row.patch_id), time=pd.Timestamp(row.time).isoformat(), t=int(row.t))


def export_patches(store: str | Path, frame: pd.DataFrame, out_dir: str | Path, fmt: str = "npz", *,
                   features: list[str] | None = None, limit: int | None = None,
                   groups: dict[str, list[str]] | None = None) -> Path:
    """Write one file per index row (the first `limit` rows), or one per row and group, and a manifest; returns
    the manifest.csv path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "geotiff":
        _rasterio()  # fail before writing anything
    if groups is not None:
        if features is not None:
            raise ValueError("give either features or groups to export, not both")
        return _export_groups(store, frame, Path(out_dir), fmt, limit, groups)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reader = PatchReader(store, features)
    stats = reader.statistics()
    rows = frame.head(limit) if limit is not None else frame
    paths = []
    for row in rows.itertuples(index=False):
        x = reader.read(int(row.t), int(row.y0), int(row.x0), int(row.height), int(row.width))
        path = out_dir / f"{_file_stem(row)}.{'npz' if fmt == 'npz' else 'tif'}"
        if fmt == "npz":
            write_npz(path, x, reader, row, stats)
        else:
            write_geotiff(path, x, reader, row)
        paths.append(path.name)
    manifest = out_dir / "manifest.csv"
    rows.assign(path=paths).to_csv(manifest, index=False)
    return manifest


def _export_groups(store, frame: pd.DataFrame, out_dir: Path, fmt: str, limit: int | None,
                   groups: dict[str, list[str]]) -> Path:
    """One file per row and group, same basename in each group's folder; manifest.csv and manifest.json."""
    from satflow.dataset import match_groups

    matched = match_groups(groups, PatchReader(store).all_features, store)
    reader = PatchReader(store, list(dict.fromkeys(f for names in matched.values() for f in names)))
    stats = reader.statistics()
    index = {name: [reader.features.index(f) for f in names] for name, names in matched.items()}
    for name in matched:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    rows = frame.head(limit) if limit is not None else frame
    files: dict[str, list[str]] = {name: [] for name in matched}
    extension = "npz" if fmt == "npz" else "tif"
    for row in rows.itertuples(index=False):
        x = reader.read(int(row.t), int(row.y0), int(row.x0), int(row.height), int(row.width))
        for name, picked in index.items():
            relative = f"{name}/{_file_stem(row)}.{extension}"
            if fmt == "npz":
                write_npz(out_dir / relative, x[picked], reader, row, {k: v[picked] for k, v in stats.items()},
                          matched[name])
            else:
                write_geotiff(out_dir / relative, x[picked], reader, row, matched[name])
            files[name].append(relative)
    manifest = out_dir / "manifest.csv"
    rows.assign(**{f"{name}_path": paths for name, paths in files.items()}).to_csv(manifest, index=False)
    patches = [{"patch_id": str(row.patch_id), "split": str(row.split), "t": int(row.t),
                "time": pd.Timestamp(row.time).isoformat(), "files": {name: files[name][k] for name in matched}}
               for k, row in enumerate(rows.itertuples(index=False))]
    (out_dir / "manifest.json").write_text(json.dumps(
        {"store": str(store), "format": fmt, "groups": matched, "patches": patches}, indent=1))
    return manifest
