"""The codec benchmark's datasets: (time, feature, lat, lon) float32 blocks with NaN gaps and masks.

Four kinds of data, so that no figure depends on structure satflow's coders were designed for:

- `amsua_dataset`: AMSU-A-like brightness temperatures (15 channels, swath gaps) from satflow's own
  sample generator, ingested with satflow (the data the error-bounded coder and the learned codec
  were developed on);
- `unshared_dataset`: a generated field whose channels share only their large-scale structure:
  one smooth large-scale field (scaled and offset per channel) plus, per channel, an independent
  red-spectrum small-scale field and white noise, in K, with the AMSU sample's gap mask. What one
  channel says about another's small scales is nothing, so a cross-channel context cannot help;
- `ostia_dataset`: OSTIA monthly SST from iris-sample-data (real, one feature, land invalid);
- `colpex_dataset` / `uk_hires_dataset`: real Met Office Unified Model output shipped by
  iris-sample-data as PP files: air potential temperature (STASH m01s00i004) on model levels,
  the levels becoming features. colpex: the 10 lowest levels (5-395 m), 83 x 83 cells, 6 steps
  of 10 minutes; uk_hires: 7 levels (5-1325 m, every third), 204 x 187 cells, 3 hourly steps,
  stored by the model at a resolution of 1/8 K.

Each returns a dict: name, source (text), x (float32, NaN = invalid), mask (uint8), features,
source_bytes (bytes of the source files behind x, 0 when not meaningful) and notes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def _sample_data() -> Path:
    import iris_sample_data

    return Path(iris_sample_data.__file__).parent / "sample_data"


def _store_blocks(path: Path, steps: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from satflow.store import open_store

    ds = open_store(path)
    n = min(steps, ds.sizes["time"])
    return ds["X"].values[:n], ds["M"].values[:n], [str(f) for f in ds["feature"].values]


def store_dataset(path: Path, steps: int) -> dict:
    x, m, features = _store_blocks(path, steps)
    return {"name": "store", "source": str(path), "x": x, "mask": m, "features": features, "source_bytes": 0}


def amsua_dataset(work: Path, steps: int, resolution: float, seed: int = 0) -> dict:
    """AMSU-like brightness temperatures (15 channels, swath gaps): sample files + satflow ingest."""
    from satflow.ingest import run_ingest
    from satflow.ingest.options import IngestConfig
    from satflow.sources.options import SourceConfig
    from satflow.sources.samples import write_amsua_sample

    store = work / f"amsua-seed{seed}.zarr"
    files = write_amsua_sample(work / f"raw-seed{seed}", steps=steps, resolution=resolution, seed=seed)
    config = IngestConfig(source=SourceConfig(variables=["tmbrs"]))
    run_ingest([str(f) for f in files], store, config, progress=False)
    x, m, features = _store_blocks(store, steps)
    return {"name": "amsua", "source": f"write_amsua_sample(seed={seed}, resolution={resolution}) + satflow ingest "
            "(tmbrs)", "x": x, "mask": m, "features": features,
            "source_bytes": sum(f.stat().st_size for f in files)}


def ostia_dataset(steps: int) -> dict:
    """OSTIA monthly SST (iris-sample-data), one feature; fill values (land) become invalid."""
    import xarray as xr

    path = _sample_data() / "ostia_monthly.nc"
    with xr.open_dataset(path) as ds:
        sst = ds["surface_temperature"].values[:steps].astype(np.float32)  # _FillValue decoded to NaN
        total_steps = ds.sizes["time"]
    x = sst[:, None]
    return {"name": "ostia", "source": str(path), "x": x, "mask": np.isfinite(x).astype(np.uint8),
            "features": ["surface_temperature"], "source_bytes": int(path.stat().st_size * x.shape[0] / total_steps)}


# --- a field whose channels share only their large-scale structure ---------------------------------
def red_noise(rng: np.random.Generator, shape: tuple[int, int], resolution: float, *, slope: float = 3.0,
              cutoff_deg: float = 10.0) -> np.ndarray:
    """Unit-variance random field with only small scales: power ~ k^-slope below `cutoff_deg` wavelengths.

    Spectral synthesis on the grid (periodic), with wavenumbers in cycles per degree so the field
    has the same statistics at any resolution; a smooth high-pass (1 - exp(-(k/k0)^2), k0 = 1/cutoff)
    removes the scales a large-scale field shares.
    """
    ky = np.fft.fftfreq(shape[0], d=resolution)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=resolution)[None, :]
    k = np.hypot(kx, ky)
    k0 = 1.0 / cutoff_deg
    with np.errstate(divide="ignore"):
        amplitude = np.where(k > 0, k ** (-slope / 2.0), 0.0) * (1.0 - np.exp(-((k / k0) ** 2)))
    spectrum = (rng.standard_normal(amplitude.shape) + 1j * rng.standard_normal(amplitude.shape)) * amplitude
    field = np.fft.irfft2(spectrum, s=shape)
    return field / field.std()


def unshared_field(mask: np.ndarray, *, seed: int = 7, large_scale_deg: float = 12.0,
                   white_noise: tuple[float, float] = (0.15, 0.6)) -> np.ndarray:
    """(time, feature, lat, lon) float32 in K, NaN where `mask` is 0, on a global regular grid.

    Per channel c: T_c = a_c + b_c * L + s_c * S_c + n_c * W_c, with L one large-scale field shared by
    all channels (a meridional profile plus correlated noise of `large_scale_deg` length, K), S_c an
    independent small-scale red-spectrum field (`red_noise`, std s_c = 1-4 K), and W_c white noise
    (std n_c drawn in `white_noise`, default 0.15-0.6 K, an instrument's NEDT). Offsets a_c (205-285 K) and gains b_c (0.4-1.3)
    differ per channel, so one channel is no copy of another even at large scale.
    """
    from satflow.grid import cell_centres
    from satflow.sources.samples.synthetic import correlated_noise, to_grid

    steps, features, n_lat, n_lon = mask.shape
    resolution = 180.0 / n_lat
    lat, lon = cell_centres(-90.0, 90.0, resolution), cell_centres(-180.0, 180.0, resolution)
    rng = np.random.default_rng(seed)
    offset = rng.uniform(205.0, 285.0, features)
    gain = rng.uniform(0.4, 1.3, features)
    small = rng.uniform(1.0, 4.0, features)
    white = rng.uniform(*white_noise, features)
    profile = 30.0 * np.cos(np.radians(lat))[:, None] - 15.0  # warm tropics, cold poles (K)
    out = np.empty(mask.shape, np.float32)
    for t in range(steps):
        large = profile + 8.0 * to_grid(correlated_noise(rng, 1, large_scale_deg), lat, lon)[0]
        for c in range(features):
            field = (offset[c] + gain[c] * large + small[c] * red_noise(rng, (n_lat, n_lon), resolution)
                     + white[c] * rng.standard_normal((n_lat, n_lon)))
            out[t, c] = np.where(mask[t, c] != 0, field, np.nan)
    return out


def unshared_dataset(mask: np.ndarray, *, seed: int = 7, white_noise: tuple[float, float] = (0.15, 0.6)) -> dict:
    """`unshared_field` on the grid and gaps of `mask` (the AMSU sample's: swath gaps, per-channel validity)."""
    x = unshared_field(mask, seed=seed, white_noise=white_noise)
    return {"name": "unshared", "x": x, "mask": np.isfinite(x).astype(np.uint8),
            "features": [f"field-{c + 1}" for c in range(x.shape[1])], "source_bytes": 0,
            "source": f"benchdata.unshared_field(seed={seed}): shared large-scale field (scaled and offset per "
                      "channel) + independent red-spectrum small scales (k^-3 below 10 deg, 1-4 K) + white "
                      f"noise ({white_noise[0]:g}-{white_noise[1]:g} K) per channel, "
                      + ("the AMSU sample's gap mask" if not mask.all() else "no gaps")}


# --- real Unified Model output (PP files of iris-sample-data) -------------------------------------
PP_INTS, PP_REALS = 45, 19


def read_pp(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every field of an unpacked 32-bit PP file: (integer header, real header, (rows, columns) float32).

    PP is the Met Office's sequential format: per field a Fortran record of 64 big-endian words
    (45 integers, 19 reals) and a record of data. Only unpacked data (LBPACK 0) is read; anything
    else raises, as do records whose lengths disagree. Missing data (BMDI) becomes NaN; the
    real header's datum (BDATUM) and scale (BMKS) are applied.
    """
    raw = Path(path).read_bytes()
    fields, pos = [], 0
    while pos < len(raw):
        header, pos = _fortran_record(raw, pos, path)
        if len(header) != 4 * (PP_INTS + PP_REALS):
            raise ValueError(f"{path}: PP header of {len(header)} bytes at offset {pos}, expected 256")
        ints = np.frombuffer(header, ">i4", PP_INTS).astype(np.int64)
        reals = np.frombuffer(header, ">f4", PP_REALS, 4 * PP_INTS).astype(np.float64)
        data, pos = _fortran_record(raw, pos, path)
        lbpack, rows, columns = int(ints[20]), int(ints[17]), int(ints[18])
        if lbpack != 0:
            raise ValueError(f"{path}: field packed with LBPACK {lbpack}; only unpacked (0) PP data is read here")
        values = np.frombuffer(data, ">f4", rows * columns).reshape(rows, columns).astype(np.float32)
        values = np.where(values == np.float32(reals[17]), np.float32(np.nan), values)  # BMDI
        scale = reals[18] if reals[18] != 0 else 1.0  # BMKS (0 in some files means "not set")
        if scale != 1.0 or reals[4] != 0.0:
            values = (values * scale + reals[4]).astype(np.float32)
        fields.append((ints, reals, values))
    return fields


def _fortran_record(raw: bytes, pos: int, path) -> tuple[bytes, int]:
    (length,) = struct.unpack(">i", raw[pos:pos + 4])
    end = pos + 4 + length
    if length < 0 or end + 4 > len(raw) or struct.unpack(">i", raw[end:end + 4])[0] != length:
        raise ValueError(f"{path}: broken Fortran record at offset {pos}")
    return raw[pos + 4:end], end + 4


def pp_levels_dataset(name: str, paths: list[Path], stash: int, steps: int, units: str = "K") -> dict:
    """Fields of one STASH item on model levels -> (time, level, rows, columns); levels become features.

    Time steps are the validity times (LBYR..LBMIN), sorted; a step that lacks a level raises. Rows
    stay in the file's order. PP data is unpacked float32, so a ratio against the source file is the
    ratio against float32 (source_bytes 0: not reported).
    """
    by_time: dict[tuple, dict[int, np.ndarray]] = {}
    heights: dict[int, float] = {}
    for path in paths:
        for ints, reals, values in read_pp(path):
            if int(ints[41]) != stash:
                continue
            level = int(ints[32])
            heights[level] = float(reals[6])  # BLEV: level height (m) on hybrid height levels
            by_time.setdefault(tuple(int(v) for v in ints[:5]), {})[level] = values
    levels = sorted(heights)
    times = sorted(by_time)[:steps]
    if not times:
        raise ValueError(f"{name}: no field with STASH {stash} in {[str(p) for p in paths]}")
    for t in times:
        if sorted(by_time[t]) != levels:
            raise ValueError(f"{name}: time {t} has levels {sorted(by_time[t])}, expected {levels}")
    x = np.stack([np.stack([by_time[t][lev] for lev in levels]) for t in times]).astype(np.float32)
    return {"name": name, "x": x, "mask": np.isfinite(x).astype(np.uint8), "units": units,
            "features": [f"theta-L{lev}" for lev in levels], "level_heights_m": [heights[lev] for lev in levels],
            "source_bytes": 0,
            "source": f"{', '.join(p.name for p in paths)} (iris-sample-data, Met Office Unified Model), STASH "
                      f"m01s00i{stash:03d} air potential temperature on model levels {levels[0]}-{levels[-1]} "
                      f"({heights[levels[0]]:g}-{heights[levels[-1]]:g} m), times {times[0]}..{times[-1]}"}


def colpex_dataset(steps: int) -> dict:
    """COLPEX (UK, 2009-09-09): theta on the 10 lowest model levels, 83 x 83 cells, 10-minute steps."""
    return pp_levels_dataset("colpex", [_sample_data() / "colpex.pp"], stash=4, steps=steps)


def uk_hires_dataset(steps: int) -> dict:
    """UK high-resolution forecast (2009-11-19): theta on 7 model levels, 204 x 187 cells, hourly steps."""
    return pp_levels_dataset("uk_hires", [_sample_data() / "uk_hires.pp"], stash=4, steps=steps)
