"""`satflow train`: the training stages of the learned codec (`satflow.train` does the work)."""

from __future__ import annotations

import argparse
import os

from satflow.train.options import TrainConfig

_FLAGS = ("stage", "epochs", "batch_size", "lr", "lmbda", "device", "max_steps_per_epoch", "val_patches", "seed")


def register(subparsers, common: argparse.ArgumentParser) -> None:
    """Add `satflow train`."""
    parser = subparsers.add_parser(
        "train", parents=[common], help="train the learned codec (VAEformerLite + hyperprior, causal context)",
        description="Train VAEformerLite on the train split of a patch index: stage pretrain (masked MSE "
        "+ rate), then stage finetune-entropy (transforms frozen); stage context trains the causal context "
        "network of errorbound(context='learned') into the same checkpoint. Checkpoints go to OUT/last each epoch and "
        "OUT/<stage> at the end; validation on the val split reports RMSE (physical units) and real bits per "
        "value. Under torchrun it trains with DDP (see jobs/train_ddp.py). Flags override the train: section.",
    )
    parser.add_argument("store", help="the Zarr store (satflow ingest)")
    parser.add_argument("--index", required=True, help="patch index Parquet of the store (satflow index)")
    parser.add_argument("--out", required=True, help="checkpoint directory")
    parser.add_argument("--stage", choices=("pretrain", "finetune-entropy", "context"), help="training stage (train.stage)")
    parser.add_argument("--epochs", type=int, help="total epochs of this stage (train.epochs)")
    parser.add_argument("--resume", metavar="CKPT",
                        help="checkpoint to continue (same stage) or to start this stage from (e.g. OUT/pretrain)")
    parser.add_argument("--batch-size", type=int, help="patches per step (train.batch_size)")
    parser.add_argument("--lr", type=float, help="learning rate (train.lr)")
    parser.add_argument("--lmbda", type=float, help="rate-distortion weight in lmbda * D + R (train.lmbda)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (train.device)")
    parser.add_argument("--max-steps", dest="max_steps_per_epoch", type=int, help="cap on steps per epoch")
    parser.add_argument("--val-patches", type=int, help="val patches coded to real streams per epoch")
    parser.add_argument("--seed", type=int, help="random seed (train.seed)")
    parser.set_defaults(handler=run_train)


def config_from_args(args, config) -> TrainConfig:
    """The train: section with the command-line flags applied (validated)."""
    overrides = {name: getattr(args, name) for name in _FLAGS if getattr(args, name, None) is not None}
    return TrainConfig.model_validate({**config.train.model_dump(), **overrides})


def run_train(args, config) -> int:
    from pydantic import ValidationError

    from satflow.train import train  # torch: imported only when the command runs

    try:
        train_config = config_from_args(args, config)
    except ValidationError as err:
        raise ValueError(f"invalid train flags: {err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}") from None
    result = train(args.store, args.index, args.out, train_config, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {result.checkpoint}")
    return 0
