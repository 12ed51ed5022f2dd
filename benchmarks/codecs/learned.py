"""Learned codec end to end: sample data -> store -> index -> train -> codec benchmark on held-out data.

Everything is seeded, so the figures in the README come from one command:

    OMP_NUM_THREADS=1 python benchmarks/codecs/learned.py            # about 5 minutes on 2 CPU cores
    python benchmarks/codecs/learned.py --checkpoint DIR               # reuse a trained checkpoint

Training data: 16 six-hourly AMSU-like files at 1 degree (seed 0), brightness temperatures only
(`tmbrs`, 15 channels). Test data: 4 other files (seed 1, another weather and other swaths), never
seen in training. The classic codecs and the learned codec (and the error-bounded wrapper around
each) are then measured on the test store by `run.py`, from real container bytes.
Outputs: results/learned.json (training history, the codec table, the same-rate comparison
against bit-rounding, targets) and results/learned.png (rate-distortion).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
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
    from satflow.config import IngestConfig, SourceConfig
    from satflow.index import build_index
    from satflow.index.options import IndexConfig, SplitConfig
    from satflow.ingest import run_ingest
    from satflow.sources.sample import write_amsua_sample

    files = write_amsua_sample(work / "train-raw", steps=steps, resolution=resolution, seed=0)
    store, index = work / "train.zarr", work / "train.parquet"
    run_ingest([str(f) for f in files], store, IngestConfig(source=SourceConfig(variables=["tmbrs"])), progress=False)
    split = SplitConfig(window_patches=1, train=0.7, val=0.15, test=0.15)
    build_index(store, index, IndexConfig(patch_size=32, stride=32, max_nodata_fraction=0.9, split=split))
    return store, index


def train_model(store: Path, index: Path, out: Path, pretrain_epochs: int, finetune_epochs: int) -> tuple[Path, list]:
    """Stage pretrain (masked MSE + rate), then finetune-entropy (transforms frozen)."""
    from satflow.codecs.options import TrainConfig
    from satflow.train import train

    pretrain = TrainConfig(stage="pretrain", epochs=pretrain_epochs, lmbda=300.0, device="cpu", val_patches=8)
    first = train(store, index, out, pretrain)
    finetune = pretrain.model_copy(update={"stage": "finetune-entropy", "epochs": finetune_epochs})
    second = train(store, index, out, finetune, resume=first.checkpoint)
    return second.checkpoint, first.history + second.history


def same_rate_comparison(rows: list[dict], learned: str) -> list[dict]:
    """For each learned setting: bit-rounding's RMSE interpolated (in log RMSE) at the same bits per value."""
    bitround = sorted((r for r in rows if r["family"] == "bitround"), key=lambda r: r["bits_per_value"])
    bits = np.array([r["bits_per_value"] for r in bitround])
    log_rmse = np.log([r["rmse"] for r in bitround])
    table = []
    for row in (r for r in rows if r["family"] == learned):
        inside = bits[0] <= row["bits_per_value"] <= bits[-1]
        at_rate = float(np.exp(np.interp(row["bits_per_value"], bits, log_rmse))) if inside else None
        table.append({"codec": row["codec"], "bits_per_value": row["bits_per_value"], "rmse": row["rmse"],
                      "bitround_rmse_at_same_rate": at_rate,
                      "learned_better": None if at_rate is None else row["rmse"] < at_rate})
    return table


def targets(dataset: dict, learned: str, comparison: list[dict]) -> dict:
    bounds = dataset["ratio_at_bound"]
    classic = [family for family in bounds if learned not in family]
    result = {"learned_beats_bitround_at_same_rate_somewhere": any(r["learned_better"] for r in comparison)}
    for bound in ("0.5", "1.0"):
        best_classic = max((bounds[f][bound] or 0.0) for f in classic)
        ours = bounds.get(f"errorbound({learned})", {}).get(bound) or 0.0
        result[f"errorbound_{learned}_vs_best_classic_at_{bound}K"] = ours / best_classic if best_classic else None
    rows = dataset["results"]
    throughput = {r["family"]: 1 / (1 / r["encode_mb_s"] + 1 / r["decode_mb_s"]) for r in rows
                  if r["family"] in (learned, "sz3")}
    result["learned_vs_sz3_encode_plus_decode_throughput"] = throughput[learned] / throughput["sz3"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="reuse this trained checkpoint (skips training)")
    parser.add_argument("--train-steps", type=int, default=16)
    parser.add_argument("--test-steps", type=int, default=4)
    parser.add_argument("--resolution", type=float, default=1.0)
    parser.add_argument("--pretrain-epochs", type=int, default=25)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--keep", type=Path, help="keep the work directory (stores, checkpoint) here")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # training progress per epoch

    work = args.keep or Path(tempfile.mkdtemp(prefix="satflow-learned-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        history: list = []
        checkpoint = args.checkpoint
        if checkpoint is None:
            store, index = build_training_store(work, args.train_steps, args.resolution)
            checkpoint, history = train_model(store, index, work / "checkpoints", args.pretrain_epochs,
                                              args.finetune_epochs)
        train_seconds = time.perf_counter() - started
        test = codec_bench.amsua_dataset(work, args.test_steps, args.resolution, seed=1)
        settings = codec_bench.codec_settings(False, "vaeformer", {"checkpoint": str(checkpoint)})
        dataset = codec_bench.run_dataset(test, settings)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    comparison = same_rate_comparison(dataset["results"], "vaeformer")
    results = {
        "train": {"steps": args.train_steps, "resolution": args.resolution, "seed": 0,
                  "pretrain_epochs": args.pretrain_epochs, "finetune_epochs": args.finetune_epochs,
                  "seconds": round(train_seconds, 1), "history": history},
        "test": {"steps": args.test_steps, "seed": 1},
        "datasets": {"amsua-heldout": dataset},
        "same_rate_vs_bitround": comparison,
        "targets": targets(dataset, "vaeformer", comparison),
        "seconds": round(time.perf_counter() - started, 1),
        "gpu": "none lent to this run (torch.cuda.is_available() is False)" if not _cuda() else "cuda available",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learned.json").write_text(json.dumps(results, indent=2, default=float))
    codec_bench.plot({"datasets": results["datasets"]}, args.out / "learned.png")
    print(json.dumps({"same_rate_vs_bitround": comparison, "ratio_at_bound": dataset["ratio_at_bound"],
                      "targets": results["targets"]}, indent=2, default=float))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
