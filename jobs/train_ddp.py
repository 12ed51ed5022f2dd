#!/usr/bin/env python
"""DDP entry point: `satflow train` under torchrun (one process per GPU, or per CPU slot with gloo).

    torchrun --standalone --nproc_per_node=4 jobs/train_ddp.py STORE --index INDEX.parquet --out runs/a
    torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
        jobs/train_ddp.py STORE --index INDEX.parquet --out runs/a --stage finetune-entropy --resume runs/a/pretrain

Every argument is a `satflow train` argument. torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; satflow.train
sees WORLD_SIZE > 1 and joins the process group (NCCL on GPUs, gloo on CPU). Batch size is per
process; rank 0 validates and writes the checkpoints.
"""

from __future__ import annotations

import sys

from satflow.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
