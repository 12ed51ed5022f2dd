"""vaeformer on a GPU: encode/decode MB/s against the same codec on one CPU core, and whether the bytes agree.

The device machine lent to a session lacks most of satflow's dependencies (zarr, netCDF4, SZ3), so
the data are prepared here and carried: `--save-data FILE` writes run.py's held-out AMSU-like blocks
(x, mask) to an .npz; on the GPU machine `--data FILE` loads them, codes them with `vaeformer` at
each qstep on `cuda` and on `cpu` (one thread), best of --repeats after a warm-up, and records:
MB/s of float32 both ways, bits per value and RMSE, whether the CUDA and CPU streams are byte for
byte the same, and whether each device decodes the other's stream to the same values.

    python benchmarks/codecs/gpu.py --save-data .gpubench/amsua.npz          # here (needs satflow's ingest)
    python benchmarks/codecs/gpu.py --data .gpubench/amsua.npz --out DIR     # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def save_data(path: Path, steps: int, resolution: float) -> None:
    import shutil
    import tempfile

    sys.path.insert(0, str(HERE))
    from benchdata import amsua_dataset

    work = Path(tempfile.mkdtemp(prefix="satflow-gpu-data-"))
    try:
        data = amsua_dataset(work, steps, resolution, seed=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=data["x"], mask=data["mask"], features=np.array(data["features"]))
    print(f"wrote {path}: {data['x'].shape}")


def _timed(fn, repeats: int, sync) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, out


def measure(x: np.ndarray, mask: np.ndarray, checkpoint: str, qsteps: list[float], repeats: int) -> list[dict]:
    import torch

    from satflow.codecs.learned.codec import VAEformerCodec

    torch.set_num_threads(1)
    megabytes = x.nbytes / 1e6
    valid = mask != 0
    rows = []
    for qstep in qsteps:
        codecs = {"cuda": VAEformerCodec(checkpoint=checkpoint, device="cuda", qstep=qstep),
                  "cpu": VAEformerCodec(checkpoint=checkpoint, device="cpu", qstep=qstep)}
        streams, decoded, row = {}, {}, {"qstep": qstep}
        for device, codec in codecs.items():
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            codec.decode_batch(codec.encode_batch(x[:1], mask[:1]))  # warm-up (kernels, allocations)
            encode_s, streams[device] = _timed(lambda: codec.encode_batch(x, mask), repeats, sync)
            decode_s, out = _timed(lambda: codec.decode_batch(streams[device]), repeats, sync)
            decoded[device] = np.stack([d[0] for d in out])
            error = decoded[device][valid].astype(np.float64) - x[valid]
            row[device] = {"encode_mb_s": megabytes / encode_s, "decode_mb_s": megabytes / decode_s,
                           "bits_per_value": 8 * sum(len(s) for s in streams[device]) / x.size,
                           "rmse": float(np.sqrt(np.mean(error**2))), "max_abs_error": float(np.abs(error).max())}
        row["streams_identical"] = all(a == b for a, b in zip(streams["cuda"], streams["cpu"]))
        cross = {}
        for writer, reader in (("cuda", "cpu"), ("cpu", "cuda")):
            try:
                values = np.stack([d[0] for d in codecs[reader].decode_batch(streams[writer])])
                if np.array_equal(values, decoded[writer], equal_nan=True):
                    cross[f"{writer}_stream_on_{reader}"] = "same values"
                else:
                    diff = np.abs(values[valid].astype(np.float64) - decoded[writer][valid])
                    error = values[valid].astype(np.float64) - x[valid]
                    cross[f"{writer}_stream_on_{reader}"] = {
                        "differs_from_writer_decode_at_fraction": float(np.mean(diff > 0)),
                        "max_abs_difference": float(diff.max()),
                        "rmse_vs_original": float(np.sqrt(np.mean(error**2)))}
            except Exception as err:  # a refusal is an answer too: record it
                cross[f"{writer}_stream_on_{reader}"] = f"refused: {type(err).__name__}: {err}"[:300]
        row["cross_device_decode"] = cross
        row["gpu_vs_cpu"] = {k: row["cuda"][k] / row["cpu"][k] for k in ("encode_mb_s", "decode_mb_s")}
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--save-data", type=Path, help="write the held-out AMSU-like blocks to this .npz and stop")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--resolution", type=float, default=1.0)
    parser.add_argument("--data", type=Path, help=".npz written by --save-data")
    parser.add_argument("--checkpoint", default=str(HERE.parents[1] / "satflow" / "data" / "amsua-vaeformer"))
    parser.add_argument("--qsteps", type=float, nargs="+", default=[0.5, 1.0, 3.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.save_data:
        save_data(args.save_data, args.steps, args.resolution)
        return
    import torch

    data = np.load(args.data)
    rows = measure(data["x"], data["mask"], args.checkpoint, args.qsteps, args.repeats)
    meta = json.loads((Path(args.checkpoint) / "meta.json").read_text())
    result = {"command": "python benchmarks/codecs/gpu.py " + " ".join(sys.argv[1:]),
              "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cpu_threads": 1,
              "cpus": os.cpu_count(), "shape": list(data["x"].shape), "megabytes": data["x"].nbytes / 1e6,
              "checkpoint_fingerprint": meta.get("fingerprint"), "repeats": args.repeats, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(result, indent=2, default=float))
    print(f"wrote {args.out / 'gpu.json'}")


if __name__ == "__main__":
    main()
