"""Codec benchmark: rate-distortion, ratio at max-error bounds, and throughput, from real bitstreams.

Datasets (one (feature, lat, lon) block per time step, NaN gaps kept):
- amsua: AMSU-A-like brightness temperatures (`tmbrs`, 15 channels with swath gaps) from
  `satflow.sources.sample.write_amsua_sample` ingested with `satflow.ingest`, or any store given
  with --store;
- ostia: OSTIA monthly SST from iris-sample-data (ostia_monthly.nc, land = invalid), real data; its
  source-file bytes give the ratio vs the NetCDF source.

Every codec runs at several settings; bits are the bytes of the containers (header, mask and
checksum included). Errors are over valid points; error-bounded settings also count the points
beyond their bound. Throughput is the best of --repeats timed runs. Learned codecs are picked up by
name: `--learned NAME --checkpoint PATH [--learned-param device=cuda]` adds NAME and the
error-bounded learned settings (`learned_bounded_settings`); a checkpoint trained on other
features than a dataset's is skipped with a note.

    python benchmarks/codecs/run.py            # full run (about 2.7 minutes on 2 cores)
    python benchmarks/codecs/run.py --quick    # about 5 s smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from satflow.codecs.registry import get_codec
from satflow.metrics import ErrorSums, merge_all

HERE = Path(__file__).parent
BOUNDS = (0.1, 0.5, 1.0)  # max-error bounds, in the data's units (K for both datasets)


# --- datasets -------------------------------------------------------------------------------------
def _store_blocks(path: Path, steps: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from satflow.store import open_store

    ds = open_store(path)
    n = min(steps, ds.sizes["time"])
    return ds["X"].values[:n], ds["M"].values[:n], [str(f) for f in ds["feature"].values]


def amsua_dataset(work: Path, steps: int, resolution: float, seed: int = 0) -> dict:
    """AMSU-like brightness temperatures (15 channels, swath gaps): sample files + satflow ingest."""
    from satflow.config import IngestConfig, SourceConfig
    from satflow.ingest import run_ingest
    from satflow.sources.sample import write_amsua_sample

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
    import iris_sample_data
    import xarray as xr

    path = Path(iris_sample_data.__file__).parent / "sample_data" / "ostia_monthly.nc"
    with xr.open_dataset(path) as ds:
        sst = ds["surface_temperature"].values[:steps].astype(np.float32)  # _FillValue decoded to NaN
    x = sst[:, None]
    share = x.shape[0] / xr.open_dataset(path).sizes["time"]
    return {"name": "ostia", "source": str(path), "x": x, "mask": np.isfinite(x).astype(np.uint8),
            "features": ["surface_temperature"], "source_bytes": int(path.stat().st_size * share)}


# --- codec settings -------------------------------------------------------------------------------
def codec_settings(quick: bool, learned: str | None, learned_params: dict) -> list[tuple[str, str, dict]]:
    """(family, codec name, params) for every setting to measure."""
    tols = [0.05, 0.1, 0.5, 1.0] if quick else [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0]
    keepbits = [4, 7, 10] if quick else [2, 3, 4, 5, 6, 7, 8, 10, 12]
    settings = [("lossless", "lossless", {})]
    settings += [("bitround", "bitround", {"keepbits": k}) for k in keepbits]
    settings += [("bitround-auto", "bitround", {"information": i}) for i in ((0.99,) if quick else (0.9, 0.99, 0.9999))]
    settings += [("sz3", "sz3", {"tol": t}) for t in tols]
    # SZ3 over each feature as a 2-D array instead of one 3-D block: better on channels that are not
    # smooth along the feature axis (run_dataset expands `per_feature` into one tol per feature).
    settings += [("sz3 (per feature)", "sz3", {"tol": t, "per_feature": True}) for t in tols]
    settings += [("zfp", "zfp", {"tol": t}) for t in tols + [4.0]]  # ZFP's errors stay well below its tol
    settings += [("errorbound(bitround-3)", "errorbound",
                  {"inner": "bitround", "inner_params": {"keepbits": 3}, "eps": b}) for b in BOUNDS]
    settings += [("errorbound(sz3)", "errorbound", {"inner": "sz3", "eps": b}) for b in BOUNDS]
    # The causal context alone, around an inner codec that costs nothing: the classic reference
    # that tells what a learned inner codec adds.
    settings += [("errorbound(constant)", "errorbound", {"inner": "constant", "eps": b}) for b in BOUNDS]
    if learned:
        # qstep scales the latent quantisation step: one trained model, several rates.
        qsteps = [1.0] if quick else [0.5, 1.0, 2.0, 4.0]
        settings += [(learned, learned, {**learned_params, "qstep": q}) for q in qsteps]
        settings += learned_bounded_settings(learned, learned_params, quick)
    return settings


SLOW_S = 20.0  # seconds of encode + decode beyond which one timed run is enough


def _has_context_network(checkpoint: str | None) -> bool:
    from satflow.codecs.learned.checkpoint import load_checkpoint

    return checkpoint is not None and load_checkpoint(checkpoint).context is not None


def learned_bounded_settings(learned: str, learned_params: dict, quick: bool) -> list[tuple[str, str, dict]]:
    """The error-bounded learned codec and its ablations.

    - errorbound(learned): the learned inner codec and the learned context network of the same
      checkpoint (trained by `satflow train --stage context`); a coarse inner step (qstep 4) costs
      few bits, and the context codes the rest;
    - errorbound(constant, learned context): the context network alone, around a free inner codec;
    - errorbound(learned, context=causal): the learned inner with per-block least squares instead;
    - errorbound(learned, context=none): the wrapper without context, x - x_hat point by point.
    """
    inner = {"inner": learned, "inner_params": {**learned_params, "qstep": 4.0}}
    checkpoint = learned_params.get("checkpoint")
    if not _has_context_network(checkpoint):
        print(f"{checkpoint}: no context network (satflow train --stage context): error-bounded learned "
              "settings use the least-squares context only", flush=True)
        return [(f"errorbound({learned}, context=causal)", "errorbound", {**inner, "eps": b}) for b in BOUNDS]
    settings = [(f"errorbound({learned})", "errorbound", {**inner, "eps": b, "context": "learned"}) for b in BOUNDS]
    if quick:
        return settings
    settings += [("errorbound(constant, learned context)", "errorbound",
                  {"inner": "constant", "eps": b, "context": "learned", "checkpoint": checkpoint}) for b in BOUNDS]
    settings += [(f"errorbound({learned}, context=causal)", "errorbound", {**inner, "eps": b}) for b in BOUNDS]
    settings += [(f"errorbound({learned}, context=none)", "errorbound",
                  {**inner, "eps": b, "context": "none"}) for b in BOUNDS]
    return settings


# --- measurement ----------------------------------------------------------------------------------
def measure(codec, x: np.ndarray, mask: np.ndarray, source_bytes: int, features: list[str],
            eps: float | None = None, repeats: int = 1) -> dict:
    """Encode/decode every block as one batch; metrics from the real bytes; throughput in MB/s of float32.

    Throughput is the best of `repeats` timed runs (the machine is shared: the minimum is the least
    disturbed); a setting whose run takes over `SLOW_S` is timed once. With `eps`, the valid points whose error exceeds it are counted (bound violations).
    """
    encode_s = decode_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        streams = codec.encode_batch(x, mask)
        encode_s = min(encode_s, time.perf_counter() - start)
        start = time.perf_counter()
        decoded = codec.decode_batch(streams)
        decode_s = min(decode_s, time.perf_counter() - start)
        if encode_s + decode_s > SLOW_S:
            break
    share = source_bytes // len(streams)
    parts = [ErrorSums.from_block(x[i], x_rec, mask[i], n_bytes=len(s), source_bytes=share)
             for i, (s, (x_rec, _)) in enumerate(zip(streams, decoded))]
    report = merge_all(parts).finalize(features)
    per = report["per_feature"]
    megabytes = x.nbytes / 1e6
    row = {
        "bits_per_value": report["bits_per_value"],
        "bits_per_valid_value": report["bits_per_valid_value"],
        "compression_ratio": report["compression_ratio"],
        "compression_ratio_vs_source": report["compression_ratio_vs_source"],
        "rmse": float(np.sqrt(np.nansum(np.square(per["rmse"]) * per["count"]) / max(sum(per["count"]), 1))),
        "max_abs_error": float(np.nanmax(per["max_abs_error"])),
        "encode_mb_s": megabytes / encode_s,
        "decode_mb_s": megabytes / decode_s,
        "per_feature": per,
    }
    if eps is not None:
        row["eps"] = eps
        row["bound_violations"] = sum(_violations(x[i], x_rec, mask[i], eps) for i, (x_rec, _) in enumerate(decoded))
    return row


def _violations(x: np.ndarray, x_rec: np.ndarray, mask: np.ndarray, eps: float) -> int:
    """Valid points of one block whose reconstruction is more than eps away (float64 comparison)."""
    valid = (mask != 0) & np.isfinite(x)
    return int(np.count_nonzero(np.abs(x_rec[valid].astype(np.float64) - x[valid]) > eps))


def _learned_features(codec) -> list[str] | None:
    """Features a learned codec (or a wrapper around one) was trained on; None for classic codecs."""
    inner = getattr(codec, "inner", None)
    return getattr(codec, "features", None) or (getattr(inner, "features", None) if inner is not None else None)


def run_dataset(data: dict, settings: list[tuple[str, str, dict]], repeats: int = 1) -> dict:
    """Measure every setting on one dataset; learned codecs trained on other features are skipped."""
    rows = []
    for family, name, params in settings:
        if params.get("per_feature"):
            params = {**{k: v for k, v in params.items() if k != "per_feature"},
                      "tol": [params["tol"]] * len(data["features"])}
        codec = get_codec(name, **params)
        trained_on = _learned_features(codec)
        if trained_on is not None and list(trained_on) != list(data["features"]):
            print(f"  {data['name']:6s} {family}: skipped, its checkpoint was trained on other features "
                  f"({len(trained_on)} vs {len(data['features'])})", flush=True)
            continue
        row = {"family": family, "codec": codec.describe(),
               **measure(codec, data["x"], data["mask"], data["source_bytes"], data["features"],
                         eps=params.get("eps"), repeats=repeats)}
        rows.append(row)
        print(f"  {data['name']:6s} {row['codec'][:60]:60s} {row['bits_per_value']:7.3f} b/v  "
              f"rmse {row['rmse']:.4f}  max {row['max_abs_error']:.4f}  "
              f"enc {row['encode_mb_s']:6.1f} dec {row['decode_mb_s']:6.1f} MB/s"
              + (f"  violations {row['bound_violations']}" if "bound_violations" in row else ""), flush=True)
    return {
        "source": data["source"], "shape": list(data["x"].shape), "features": data["features"],
        "valid_fraction": float(data["mask"].mean()), "source_bytes": data["source_bytes"],
        "results": rows, "ratio_at_bound": ratio_at_bounds(rows),
    }


def ratio_at_bounds(rows: list[dict]) -> dict:
    """Per family, the best measured compression ratio whose max error stays within each bound."""
    table: dict[str, dict[str, float | None]] = {}
    for row in rows:
        entry = table.setdefault(row["family"], {str(b): None for b in BOUNDS})
        for bound in BOUNDS:
            if row["max_abs_error"] <= bound:
                best = entry[str(bound)]
                entry[str(bound)] = max(best or 0.0, row["compression_ratio"])
    return table


# --- plotting -------------------------------------------------------------------------------------
def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = results["datasets"]
    fig, axes = plt.subplots(2, len(datasets), figsize=(6 * len(datasets), 9), squeeze=False)
    for col, (name, data) in enumerate(datasets.items()):
        families: dict[str, list[dict]] = {}
        for row in data["results"]:
            families.setdefault(row["family"], []).append(row)
        for family, rows in families.items():
            rows = sorted(rows, key=lambda r: r["bits_per_value"])
            bits = [r["bits_per_value"] for r in rows]
            for row_index, key in enumerate(("rmse", "max_abs_error")):
                ax = axes[row_index, col]
                if all(r[key] == 0 for r in rows):  # exact codecs have no error to put on a log axis
                    ax.axvline(bits[0], color="black", ls="--", lw=1, label=f"{family} (exact)")
                else:
                    ax.plot(bits, [r[key] for r in rows], "o-", label=family, ms=4)
        for row_index, label in enumerate(("RMSE", "max abs error")):
            ax = axes[row_index, col]
            ax.set_yscale("log")
            ax.set_xlabel("bits per value (all cells, container bytes)")
            ax.set_ylabel(f"{label} over valid points (K)")
            ax.set_title(f"{name}: {label} vs rate")
            ax.grid(True, which="both", alpha=0.3)
            if row_index == 1:
                for bound in BOUNDS:
                    ax.axhline(bound, color="grey", ls=":", lw=0.8)
        axes[0, col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def machine() -> dict:
    """Where the throughput was measured: platform, cores, thread settings, and whether a GPU was there."""
    info = {"platform": platform.platform(), "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if "torch" in sys.modules:  # torch threads matter for learned codecs; importing torch here would not
        import torch

        info.update(torch_threads=torch.get_num_threads(), cuda_available=torch.cuda.is_available())
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few steps, coarse grid, fewer settings (< 1 minute)")
    parser.add_argument("--steps", type=int, default=4, help="time steps per dataset")
    parser.add_argument("--resolution", type=float, default=1.0, help="grid spacing of the AMSU-like sample (degrees)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the AMSU-like sample (training data uses 0)")
    parser.add_argument("--store", type=Path, help="benchmark this satflow store instead of the generated AMSU sample")
    parser.add_argument("--learned", help="registered learned codec name to include")
    parser.add_argument("--checkpoint", help="checkpoint for --learned")
    parser.add_argument("--learned-param", action="append", default=[], metavar="KEY=VALUE",
                        help="extra parameter of the learned codec, e.g. device=cuda (repeatable)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting; throughput is the best")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.resolution, args.repeats = 2, 3.0, 1
    learned_params = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.learned_param)}
    if args.checkpoint:
        learned_params["checkpoint"] = args.checkpoint
    settings = codec_settings(args.quick, args.learned, learned_params)

    work = Path(tempfile.mkdtemp(prefix="satflow-codec-bench-"))
    started = time.perf_counter()
    try:
        if args.store:
            x, m, features = _store_blocks(args.store, args.steps)
            amsua = {"name": "store", "source": str(args.store), "x": x, "mask": m, "features": features,
                     "source_bytes": 0}
        else:
            amsua = amsua_dataset(work, args.steps, args.resolution, args.seed)
        datasets = {d["name"]: run_dataset(d, settings, args.repeats) for d in (amsua, ostia_dataset(args.steps))}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "machine": machine(), "repeats": args.repeats, "quick": args.quick, "steps": args.steps,
        "resolution": args.resolution, "bounds": list(BOUNDS),
        "seconds": round(time.perf_counter() - started, 1), "datasets": datasets,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "codecs-quick" if args.quick else "codecs"
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2, default=float))
    plot(results, args.out / f"{stem}.png")
    print(json.dumps({name: d["ratio_at_bound"] for name, d in datasets.items()}, indent=2))
    print(f"wrote {args.out / (stem + '.json')} and {stem}.png in {results['seconds']} s")


if __name__ == "__main__":
    main()
