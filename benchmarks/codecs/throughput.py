"""Throughput of `errorbound` against SZ3 on one core, in one run (the machine is shared: only
ratios measured together mean much).

One AMSU-like block (15 x 180 x 360 float32, `write_amsua_sample(seed=1)` + satflow ingest, as in
run.py) coded at each bound by SZ3 per feature, errorbound(constant) with the least-squares
context (and the same writing stream version 2, without residual contexts), and
errorbound(constant) with the learned context of the shipped checkpoint. Throughput
is MB/s of float32 input, best of --repeats, the settings of one bound taking turns in each repeat,
timed by this thread's CPU time (--clock cpu, the default: on a shared machine a wait for a core is
not charged) or elapsed time (--clock wall); ratios are float32 bytes over container bytes; the
SHA-256 of each stream shows whether a change kept the bytes.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/codecs/throughput.py [--profile]

Results and the explanation of what is left: the "Throughput of errorbound" section of README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from run import amsua_dataset  # noqa: E402

from satflow.codecs.registry import codec_from_container, get_codec  # noqa: E402

CHECKPOINT = Path(__file__).parents[2] / "satflow" / "data" / "amsua-vaeformer"
BOUNDS = (0.1, 0.5, 1.0)


def _eps(params: dict) -> float:
    return params.get("eps", params.get("tol", [None])[0])


def settings(n_features: int, learned: bool) -> list[tuple[str, str, dict]]:
    rows = []
    for eps in BOUNDS:
        rows.append(("sz3 (per feature)", "sz3", {"tol": [eps] * n_features}))
        rows.append(("errorbound(constant)", "errorbound", {"inner": "constant", "eps": eps}))
        # the same coder writing stream version 2 (no residual contexts): what version 3's contexts cost
        rows.append(("errorbound(constant), stream v2", "errorbound", {"inner": "constant", "eps": eps, "stream": 2}))
        if learned:
            rows.append(("errorbound(constant, learned context)", "errorbound",
                         {"inner": "constant", "eps": eps, "context": "learned", "checkpoint": str(CHECKPOINT)}))
    return rows


def clock(kind: str):
    """The timer: 'cpu' is this thread's CPU time (on a shared machine a job that waits for a core is
    not charged for it), 'wall' the elapsed time."""
    return time.thread_time if kind == "cpu" else time.perf_counter


def _codec(name: str, params: dict):
    """get_codec, and the stream version to write when params give one ("stream")."""
    codec = get_codec(name, **{k: v for k, v in params.items() if k != "stream"})
    if "stream" in params:
        codec.stream_version = params["stream"]
    return codec


def measure_rows(rows: list[tuple[str, str, dict]], x: np.ndarray, mask: np.ndarray, repeats: int,
                 timer) -> list[dict]:
    """Encode and decode each setting `repeats` times, the settings taking turns within each repeat
    (so that a change of load on the machine touches them all alike); best time of each."""
    codecs = [_codec(name, params) for _, name, params in rows]
    streams = [codec.encode(x, mask) for codec in codecs]  # also compiles what needs compiling
    decoders = [codec_from_container(data, **({"checkpoint": params["checkpoint"]} if "checkpoint" in params else {}))
                for data, (_, _, params) in zip(streams, rows)]
    encode_s, decode_s = [float("inf")] * len(rows), [float("inf")] * len(rows)
    decoded = [None] * len(rows)
    for _ in range(repeats):
        for k, codec in enumerate(codecs):
            start = timer()
            streams[k] = codec.encode(x, mask)
            encode_s[k] = min(encode_s[k], timer() - start)
            start = timer()
            decoded[k] = decoders[k].decode(streams[k])[0]
            decode_s[k] = min(decode_s[k], timer() - start)
    valid = mask != 0
    out = []
    for (family, _, params), data, x_rec, enc, dec in zip(rows, streams, decoded, encode_s, decode_s):
        eps = params.get("eps", params.get("tol", [0])[0])
        out.append({"family": family, "eps": eps, "encode_mb_s": x.nbytes / 1e6 / enc,
                    "decode_mb_s": x.nbytes / 1e6 / dec, "ratio": x.nbytes / len(data),
                    "violations": int(np.count_nonzero(np.abs(x_rec[valid].astype(np.float64) - x[valid]) > eps)),
                    "sha256": hashlib.sha256(data).hexdigest()[:16]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-learned", action="store_true", help="skip the learned context")
    parser.add_argument("--profile", action="store_true", help="cProfile errorbound(constant) at 0.5 K instead")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time by this thread's CPU time (default: the machine is shared) or elapsed time")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="satflow-throughput-"))
    try:
        data = amsua_dataset(work, steps=1, resolution=1.0, seed=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    x, mask = data["x"][0], data["mask"][0]
    if args.profile:
        codec = get_codec("errorbound", inner="constant", eps=0.5)
        codec.decode(codec.encode(x, mask))  # compile first: the profile is of the steady state
        cProfile.runctx("codec.decode(codec.encode(x, mask))", globals(), locals(), "/tmp/errorbound.prof")
        pstats.Stats("/tmp/errorbound.prof").sort_stats("tottime").print_stats(18)
        return
    rows = []
    for eps in BOUNDS:
        for row in measure_rows([r for r in settings(x.shape[0], not args.no_learned) if _eps(r[2]) == eps],
                                x, mask, args.repeats, clock(args.clock)):
            rows.append(row)
            print(f"{row['family']:40s} eps {row['eps']:<4} enc {row['encode_mb_s']:8.1f} dec {row['decode_mb_s']:8.1f} MB/s  "
                  f"ratio {row['ratio']:6.2f}  violations {row['violations']}  {row['sha256']}", flush=True)
    for eps in BOUNDS:
        sz3 = next(r for r in rows if r["family"].startswith("sz3") and r["eps"] == eps)
        for r in rows:
            if r["eps"] == eps and r is not sz3:
                print(f"  eps {eps}: {r['family']:40s} encode {r['encode_mb_s'] / sz3['encode_mb_s']:.3f}x "
                      f"decode {r['decode_mb_s'] / sz3['decode_mb_s']:.3f}x of SZ3")
    if args.out:
        args.out.write_text(json.dumps({"shape": list(x.shape), "clock": args.clock, "repeats": args.repeats,
                                        "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
