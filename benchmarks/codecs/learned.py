"""Learned codec end to end: sample data -> store -> index -> train -> codec benchmark on held-out data.

Everything is seeded, so the figures in the README come from one command:

    OMP_NUM_THREADS=1 python benchmarks/codecs/learned.py       # train + measure, about 25 minutes unloaded, one thread
    python benchmarks/codecs/learned.py --checkpoint satflow/data/amsua-vaeformer   # reuse the shipped one

Training data: 16 six-hourly AMSU-like files at 1 degree (seed 0), brightness temperatures only
(`tmbrs`, 15 channels). Test data: 4 other files (seed 1, another weather and other swaths), never
seen in training. Training runs stages pretrain, finetune-entropy and context (the context network
of errorbound(context="learned")). The classic codecs, the learned codec and the error-bounded
settings (with the learned context, and its ablations) are then measured on the test store by
`run.py`, from real container bytes.
Outputs: results/learned.json (training history, the codec table, the same-rate comparison
against bit-rounding, the issue's targets, a per-channel diagnosis of the error-bounded learned
codec's residual cost) and results/learned.png (rate-distortion, ratio at bounds). The trained
checkpoint (weights, context network and meta.json, no optimizer state) is cached in
satflow/data/amsua-vaeformer (the checkpoint satflow ships, used by `satflow demo`) when it is under
3 MB, so the figures can be re-measured without training.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import run as codec_bench  # noqa: E402  (the sibling benchmark: datasets, settings, measurement)


def build_training_store(work: Path, steps: int, resolution: float) -> tuple[Path, Path]:
    """Sample files (seed 0) -> store of tmbrs -> patch index with leak-free splits."""
    from satflow.index import build_index
    from satflow.index.options import IndexConfig, SplitConfig
    from satflow.ingest import run_ingest
    from satflow.ingest.options import IngestConfig
    from satflow.sources.options import SourceConfig
    from satflow.sources.samples import write_amsua_sample

    files = write_amsua_sample(work / "train-raw", steps=steps, resolution=resolution, seed=0)
    store, index = work / "train.zarr", work / "train.parquet"
    run_ingest([str(f) for f in files], store, IngestConfig(source=SourceConfig(variables=["tmbrs"])), progress=False)
    split = SplitConfig(window_patches=1, train=0.7, val=0.15, test=0.15)
    build_index(store, index, IndexConfig(patch_size=32, stride=32, max_nodata_fraction=0.9, split=split))
    return store, index


CACHE_LIMIT_BYTES = 3_000_000  # a larger checkpoint stays out of the repository
CHECKPOINT_FILES = ("weights.safetensors", "meta.json", "context.safetensors")  # not the optimizer state


def train_model(store: Path, index: Path, out: Path, pretrain_epochs: int, finetune_epochs: int,
                context_epochs: int, distortion: str = "physical", lr_schedule: str = "cosine") -> tuple[Path, list]:
    """Stage pretrain (masked MSE + rate), finetune-entropy (transforms frozen), then context (the
    causal context network of errorbound(context="learned"))."""
    from satflow.train import train
    from satflow.train.options import TrainConfig

    pretrain = TrainConfig(stage="pretrain", epochs=pretrain_epochs, lmbda=300.0, device="cpu", val_patches=8,
                           distortion=distortion, lr_schedule=lr_schedule)
    first = train(store, index, out, pretrain)
    finetune = pretrain.model_copy(update={"stage": "finetune-entropy", "epochs": finetune_epochs})
    second = train(store, index, out, finetune, resume=first.checkpoint)
    context = pretrain.model_copy(update={"stage": "context", "epochs": context_epochs, "lr": 3e-3})
    third = train(store, index, out, context, resume=second.checkpoint)
    return third.checkpoint, third.history


def cache_checkpoint(checkpoint: Path) -> Path | None:
    """Copy the codec's files of `checkpoint` to the shipped checkpoint's folder if they are small enough."""
    from satflow.data import AMSUA_CHECKPOINT

    files = [name for name in CHECKPOINT_FILES if (checkpoint / name).is_file()]
    size = sum((checkpoint / name).stat().st_size for name in files)
    if size >= CACHE_LIMIT_BYTES:
        print(f"checkpoint is {size / 1e6:.1f} MB (>= {CACHE_LIMIT_BYTES / 1e6:.0f} MB): not cached in {AMSUA_CHECKPOINT}; "
              "use --keep DIR to keep it", flush=True)
        return None
    target = AMSUA_CHECKPOINT
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in files:
        shutil.copy2(checkpoint / name, target / name)
    print(f"checkpoint ({size / 1e6:.2f} MB) cached in {target}", flush=True)
    return target


def checkpoint_history(checkpoint: Path) -> list:
    """The training history recorded in a checkpoint's meta.json (for a reused checkpoint)."""
    from satflow.codecs.learned.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint).meta.history


def same_rate_comparison(rows: list[dict], learned: str) -> list[dict]:
    """For each learned setting, bit-rounding at the same bits per value.

    Two views: bit-rounding's RMSE interpolated (in log RMSE, between keepbits settings) at the
    learned rate when that rate lies inside bit-rounding's range, and the real keepbits setting
    nearest in bits per value. The learned setting is better when its RMSE is below the interpolated
    one, or, outside the range, when it needs fewer bits and makes less error than the nearest setting.
    """
    bitround = sorted((r for r in rows if r["family"] == "bitround"), key=lambda r: r["bits_per_value"])
    bits = np.array([r["bits_per_value"] for r in bitround])
    log_rmse = np.log([r["rmse"] for r in bitround])
    table = []
    for row in (r for r in rows if r["family"] == learned):
        rate = row["bits_per_value"]
        nearest = min(bitround, key=lambda r: abs(r["bits_per_value"] - rate))
        inside = bits[0] <= rate <= bits[-1]
        at_rate = float(np.exp(np.interp(rate, bits, log_rmse))) if inside else None
        if at_rate is not None:
            better = row["rmse"] < at_rate
        elif rate <= nearest["bits_per_value"] and row["rmse"] < nearest["rmse"]:
            better = True  # fewer bits and less error than bit-rounding's cheapest setting
        else:
            better = None  # fewer bits but more error: not comparable at the same rate
        table.append({"codec": row["codec"], "bits_per_value": rate, "rmse": row["rmse"],
                      "bitround_rmse_at_same_rate": at_rate,
                      "nearest_bitround": {"codec": nearest["codec"], "bits_per_value": nearest["bits_per_value"],
                                           "rmse": nearest["rmse"]},
                      "learned_better": better})
    return table


def combined_mb_s(row: dict) -> float:
    """Encode + decode throughput of one setting: MB of float32 per second of both together."""
    return 1.0 / (1.0 / row["encode_mb_s"] + 1.0 / row["decode_mb_s"])


def uses_learned_weights(family: str, learned: str) -> bool:
    return learned in family or "learned" in family


def targets(dataset: dict, learned: str, comparison: list[dict]) -> dict:
    """The issue's three targets, measured: same-rate quality, ratio at bounds, CPU throughput.

    "Best classic" is the best codec without learned weights, whatever wraps it: errorbound(constant),
    the least-squares causal context alone, counts. "Error-bounded learned" is the best errorbound
    setting that uses learned weights (the context network, the learned inner codec or both). The
    multiples against SZ3 (the better of its 3-D and per-feature settings) are given beside it.
    """
    bounds, rows = dataset["ratio_at_bound"], dataset["results"]
    classic = [family for family in bounds if not uses_learned_weights(family, learned)]
    bounded = [family for family in bounds if family.startswith("errorbound(") and uses_learned_weights(family, learned)]
    better = [r["codec"] for r in comparison if r["learned_better"]]
    result: dict = {"learned_beats_bitround_at_same_rate": {"met": bool(better), "where": better}}
    violations = sum(r["bound_violations"] for r in rows if r["family"] in bounded)
    for bound in ("0.5", "1.0"):
        best = max(classic, key=lambda f: bounds[f][bound] or 0.0)
        ours = max(bounded, key=lambda f: bounds[f][bound] or 0.0)
        ratio = bounds[ours][bound] or 0.0
        multiple = ratio / bounds[best][bound] if bounds[best][bound] else None
        sz3 = max(bounds[f][bound] or 0.0 for f in classic if f.startswith("sz3"))
        result[f"error_bounded_learned_vs_best_classic_at_{bound}K"] = {
            "error_bounded_learned": ours, "ratio": ratio, "best_classic": best,
            "best_classic_ratio": bounds[best][bound], "multiple": multiple, "target": 1.5,
            "met": bool(multiple and multiple >= 1.5 and violations == 0),
            "best_sz3_ratio": sz3, "multiple_vs_sz3": ratio / sz3 if sz3 else None}
    result["error_bounded_learned_bound_violations"] = violations
    median = {family: statistics.median(combined_mb_s(r) for r in rows if r["family"] == family)
              for family in (learned, *bounded, "sz3")}
    multiple = median[learned] / median["sz3"]
    result["cpu_encode_plus_decode_mb_s_median_over_settings"] = median
    result[f"{learned}_vs_sz3_cpu_throughput"] = {"multiple": multiple, "target": 0.25, "met": multiple >= 0.25}
    return result


def entropy_bits(symbols: np.ndarray) -> float:
    """Empirical zeroth-order entropy of integer symbols, in bits per symbol."""
    _, counts = np.unique(symbols, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def residual_diagnosis(data: dict, checkpoint: Path, bounds: tuple[float, ...] = (0.5, 1.0)) -> dict:
    """Why errorbound(learned) costs what it costs: per channel, the entropy of the residual quantised
    at step 2·eps (what the wrapper pays, bits per cell) against SZ3 coding that channel alone; and
    the learned codec plus SZ3 on its residual (a residual coder that sees spatial correlation)."""
    from satflow.codecs.registry import get_codec

    x, mask = data["x"], data["mask"]
    learned = get_codec("vaeformer", checkpoint=str(checkpoint))
    streams = learned.encode_batch(x, mask)
    residual = x - np.stack([x_rec for x_rec, _ in learned.decode_batch(streams)])  # NaN where invalid
    cells = x[:, 0].size
    result = {}
    for eps in bounds:
        sz3 = get_codec("sz3", tol=eps)
        channels = []
        for f, name in enumerate(data["features"]):
            valid = mask[:, f] != 0
            q = np.rint(residual[:, f][valid] / (2 * eps)).astype(np.int64)
            sz3_bytes = sum(len(sz3.encode(x[t, f : f + 1], mask[t, f : f + 1])) for t in range(len(x)))
            channels.append({"feature": name, "learned_rmse": float(np.sqrt(np.mean(residual[:, f][valid] ** 2))),
                             "residual_entropy_bits_per_value": entropy_bits(q) * q.size / cells,
                             "sz3_alone_bits_per_value": 8 * sz3_bytes / cells})
        hybrid = sum(map(len, streams)) + sum(map(len, sz3.encode_batch(residual, mask)))
        result[str(eps)] = {"per_channel": channels,
                            "learned_plus_sz3_on_residual_bits_per_value": 8 * hybrid / x.size,
                            "sz3_alone_bits_per_value": 8 * sum(map(len, sz3.encode_batch(x, mask))) / x.size}
    return result


def transform_diagnosis(data: dict, checkpoint: Path, qsteps: tuple[float, ...] = (1.0, 0.5)) -> dict:
    """Where the learned transform codec's error comes from (`satflow.codecs.learned.diagnose`), per
    qstep: real streams against the forward pass with the latent unquantised (the transform's floor),
    without the refinement, by distance to gaps and block edges, and on steep (land/sea) edges."""
    from satflow.codecs.learned.codec import VAEformerCodec
    from satflow.codecs.learned.diagnose import diagnose

    return {str(q): diagnose(VAEformerCodec(checkpoint=str(checkpoint), qstep=q), data["x"], data["mask"])
            for q in qsteps}


HIGHLIGHT = {"vaeformer": "tab:red", "errorbound(vaeformer)": "tab:purple", "bitround": "tab:blue", "sz3": "tab:green",
             "errorbound(constant)": "black", "errorbound(constant, learned context)": "magenta"}
OTHER_COLORS = ("tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def family_colors(families: list[str]) -> dict[str, str]:
    """The four families the targets are about in strong colours, the rest in colours of their own."""
    others = iter(OTHER_COLORS * len(families))
    return {f: HIGHLIGHT.get(f) or next(others) for f in families}


def pareto(rows: list[dict], key: str) -> list[dict]:
    """Rows not beaten by another row on both bits per value and `key`, by increasing rate."""
    kept = [r for r in rows if not any(o["bits_per_value"] <= r["bits_per_value"] and o[key] < r[key]
                                       or o["bits_per_value"] < r["bits_per_value"] and o[key] <= r[key]
                                       for o in rows)]
    return sorted(kept, key=lambda r: r["bits_per_value"])


def plot_learned(dataset: dict, out: Path) -> None:
    """RMSE and max error against bits per value (log-log: the learned codec lives below 0.5 bpv), and
    the compression ratio of every codec at each max-error bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families: dict[str, list[dict]] = {}
    for row in dataset["results"]:
        families.setdefault(row["family"], []).append(row)
    colors = family_colors(list(families))
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    for ax, key, label in ((axes[0], "rmse", "RMSE"), (axes[1], "max_abs_error", "max abs error")):
        for family, rows in families.items():
            if all(r[key] == 0 for r in rows):
                ax.axvline(rows[0]["bits_per_value"], color="black", ls="--", lw=1, label=f"{family} (exact)")
                continue
            front = pareto(rows, key)
            style = {"lw": 2.2, "ms": 6} if family in HIGHLIGHT else {"lw": 1, "ms": 3, "alpha": 0.7}
            ax.plot([r["bits_per_value"] for r in front], [r[key] for r in front], "o-", label=family,
                    color=colors[family], **style)
        ax.set(xscale="log", yscale="log", xlabel="bits per value (all cells, container bytes)",
               ylabel=f"{label} over valid points (K)", title=f"held-out AMSU-like: {label} vs rate")
        ax.grid(True, which="both", alpha=0.3)
    for bound in codec_bench.BOUNDS:
        axes[1].axhline(bound, color="grey", ls=":", lw=0.8)
    axes[0].legend(fontsize=8)
    bounds = {f: v for f, v in dataset["ratio_at_bound"].items() if any(v.values())}
    width = 0.8 / len(bounds)
    for i, (family, ratios) in enumerate(bounds.items()):
        values = [ratios[str(b)] or 0.0 for b in codec_bench.BOUNDS]
        axes[2].bar(np.arange(len(values)) + i * width, values, width, label=family, color=colors[family])
    axes[2].set(xticks=np.arange(len(codec_bench.BOUNDS)) + 0.4 - width / 2,
                xticklabels=[f"max error {b} K" for b in codec_bench.BOUNDS],
                ylabel="compression ratio vs float32", title="best ratio within each bound")
    axes[2].legend(fontsize=8)
    axes[2].grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="reuse this trained checkpoint (skips data prep and training)")
    parser.add_argument("--train-steps", type=int, default=16, help="six-hourly training files (seed 0)")
    parser.add_argument("--test-steps", type=int, default=4, help="held-out test files (seed 1)")
    parser.add_argument("--resolution", type=float, default=1.0, help="grid spacing in degrees")
    parser.add_argument("--pretrain-epochs", type=int, default=150)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--context-epochs", type=int, default=30)
    parser.add_argument("--distortion", choices=("normalised", "physical"), default="physical",
                        help="train.distortion of the transform stages (physical: MSE in kelvin, rescaled)")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="cosine",
                        help="train.lr_schedule of the transform stages")
    parser.add_argument("--no-cache", action="store_true",
                        help="keep the shipped checkpoint: do not copy the trained one to satflow/data")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per codec setting; throughput is the best")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where learned.json/png go")
    parser.add_argument("--keep", type=Path, help="keep the work directory (stores, index, checkpoints) here")
    parser.add_argument("--diagnose-only", action="store_true",
                        help="with --checkpoint: only the transform diagnosis on the test data, written to "
                             "OUT/learned-diagnosis.json (about a minute)")
    args = parser.parse_args()
    _single_thread()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # training progress per epoch
    args.out.mkdir(parents=True, exist_ok=True)

    work = args.keep or Path(tempfile.mkdtemp(prefix="satflow-learned-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.diagnose_only:
        if args.checkpoint is None:
            parser.error("--diagnose-only needs --checkpoint (the checkpoint to diagnose)")
        try:
            test = codec_bench.amsua_dataset(work, args.test_steps, args.resolution, seed=1)
            report = {"command": "OMP_NUM_THREADS=1 python benchmarks/codecs/learned.py " + " ".join(sys.argv[1:]),
                      "checkpoint": str(args.checkpoint), "test": {"steps": args.test_steps,
                      "resolution": args.resolution, "seed": 1},
                      "transform_diagnosis": transform_diagnosis(test, args.checkpoint)}
        finally:
            if args.keep is None:
                shutil.rmtree(work, ignore_errors=True)
        (args.out / "learned-diagnosis.json").write_text(json.dumps(report, indent=2, default=float))
        print(json.dumps({q: {k: report["transform_diagnosis"][q][k] for k in ("bits_per_value_payload", "coded",
                          "unquantised", "no_refine", "steep_edges")} for q in report["transform_diagnosis"]},
                         indent=2, default=float))
        return
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    try:
        checkpoint = args.checkpoint
        if checkpoint is None:
            store, index = build_training_store(work, args.train_steps, args.resolution)
            seconds["prepare_training_data"] = round(time.perf_counter() - started, 1)
            checkpoint, history = train_model(store, index, work / "checkpoints", args.pretrain_epochs,
                                              args.finetune_epochs, args.context_epochs, args.distortion, args.lr_schedule)
            seconds["train"] = round(time.perf_counter() - started - seconds["prepare_training_data"], 1)
            if not args.no_cache:
                checkpoint = cache_checkpoint(checkpoint) or checkpoint
        else:
            history = checkpoint_history(checkpoint)
        measured = time.perf_counter()
        test = codec_bench.amsua_dataset(work, args.test_steps, args.resolution, seed=1)
        settings = codec_bench.codec_settings(False, "vaeformer", {"checkpoint": str(checkpoint)})
        dataset = codec_bench.run_dataset(test, settings, args.repeats)
        diagnosis = residual_diagnosis(test, checkpoint)
        transform = transform_diagnosis(test, checkpoint)
        seconds["benchmark"] = round(time.perf_counter() - measured, 1)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    seconds["total"] = round(time.perf_counter() - started, 1)
    comparison = same_rate_comparison(dataset["results"], "vaeformer")
    results = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/codecs/learned.py " + " ".join(sys.argv[1:]),
        "machine": codec_bench.machine(),
        "train": {"steps": args.train_steps, "resolution": args.resolution, "seed": 0,
                  "pretrain_epochs": args.pretrain_epochs, "finetune_epochs": args.finetune_epochs,
                  "context_epochs": args.context_epochs, "distortion": args.distortion,
                  "lr_schedule": args.lr_schedule,
                  "checkpoint": str(checkpoint), "reused": args.checkpoint is not None, "history": history},
        "test": {"steps": args.test_steps, "resolution": args.resolution, "seed": 1},
        "repeats": args.repeats,
        "seconds": seconds,
        "datasets": {"amsua-heldout": dataset},
        "same_rate_vs_bitround": comparison,
        "targets": targets(dataset, "vaeformer", comparison),
        "errorbound_residual_diagnosis": diagnosis,
        "transform_diagnosis": transform,
        "gpu": "cuda available: not measured by this CPU run" if _cuda() else
               "none lent to this run (torch.cuda.is_available() is False): GPU throughput not measured",
    }
    (args.out / "learned.json").write_text(json.dumps(results, indent=2, default=float))
    plot_learned(dataset, args.out / "learned.png")
    print(json.dumps({"same_rate_vs_bitround": comparison, "ratio_at_bound": dataset["ratio_at_bound"],
                      "targets": results["targets"], "seconds": seconds}, indent=2, default=float))


def _single_thread() -> None:
    """One compute thread, as the figures promise: OMP_NUM_THREADS (default 1) before torch starts."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
