"""Throughput of `errorbound` against SZ3 on one core, in one run (the machine is shared: only
ratios measured together mean much).

Fields (--fields): `block`, one AMSU-like block (15 x 180 x 360 float32, `write_amsua_sample(seed=1)`
+ satflow ingest, as in run.py); `amsua-full`, a full 0.5-degree AMSU-like field with swath gaps
(15 x 360 x 720, `write_amsua_sample(seed=1, resolution=0.5)`, its `tmbrs` read directly);
`shared-full`, a full field without gaps whose 15 channels share only their large scales plus 0.3 K
white noise (`shared_field`). Each is coded at each bound by SZ3 per feature, errorbound(constant)
with the least-squares context (stream version 5, and the same writing version 4), and on `block`
errorbound(constant) with the learned context of the shipped checkpoint (unless --no-learned).
--cold adds the first call in a fresh process (cold: the kernels loaded from numba's cache by the
first block; warmed: after `satflow.codecs.warm.warm_kernels()`), at 0.5 K. Throughput
is MB/s of float32 input, best of --repeats, the settings of one bound taking turns in each repeat,
timed by this thread's CPU time (--clock cpu, the default: on a shared machine a wait for a core is
not charged) or elapsed time (--clock wall); ratios are float32 bytes over container bytes; the
SHA-256 of each stream shows whether a change kept the bytes.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/codecs/throughput.py \
        [--fields block,amsua-full,shared-full] [--cold] [--no-learned] [--out FILE] [--profile]

Results and the explanation of what is left: the "Throughput of errorbound" section of README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pstats
import os
import shutil
import subprocess
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
FIELDS = ("block", "amsua-full", "shared-full")


def _eps(params: dict) -> float:
    return params.get("eps", params.get("tol", [None])[0])


def settings(n_features: int, learned: bool) -> list[tuple[str, str, dict]]:
    rows = []
    for eps in BOUNDS:
        rows.append(("sz3 (per feature)", "sz3", {"tol": [eps] * n_features}))
        rows.append(("errorbound(constant)", "errorbound", {"inner": "constant", "eps": eps}))
        # the same coder writing stream version 4 (one rANS state): what version 5 changed
        rows.append(("errorbound(constant), stream v4", "errorbound", {"inner": "constant", "eps": eps, "stream": 4}))
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


def shared_field(seed: int = 7, shape: tuple[int, int, int] = (15, 360, 720), white: float = 0.3) -> np.ndarray:
    """float32 (feature, lat, lon) in K without gaps: per channel a_c + b_c L + 0.3 K white noise, L one
    large-scale field (meridional profile plus 12-degree correlated noise) shared by all channels
    (benchdata.unshared_field without its independent small scales)."""
    from satflow.grid import cell_centres
    from satflow.sources.samples.synthetic import correlated_noise, to_grid

    features, n_lat, n_lon = shape
    resolution = 180.0 / n_lat
    lat, lon = cell_centres(-90.0, 90.0, resolution), cell_centres(-180.0, 180.0, resolution)
    rng = np.random.default_rng(seed)
    offset, gain = rng.uniform(205.0, 285.0, features), rng.uniform(0.4, 1.3, features)
    large = 30.0 * np.cos(np.radians(lat))[:, None] - 15.0 + 8.0 * to_grid(correlated_noise(rng, 1, 12.0), lat, lon)[0]
    return np.stack([offset[c] + gain[c] * large + white * rng.standard_normal((n_lat, n_lon))
                     for c in range(features)]).astype(np.float32)


def load_field(name: str, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x, mask) of one of FIELDS."""
    if name == "block":
        data = amsua_dataset(work, steps=1, resolution=1.0, seed=1)
        return data["x"][0], data["mask"][0]
    if name == "amsua-full":
        import xarray as xr

        from satflow.sources.samples import write_amsua_sample

        (path,) = write_amsua_sample(work / "raw-full", steps=1, resolution=0.5, seed=1)
        with xr.open_dataset(path) as ds:
            x = ds["tmbrs"].values[0].astype(np.float32)
        return x, np.isfinite(x).astype(np.uint8)
    if name == "shared-full":
        x = shared_field()
        return x, np.ones(x.shape, np.uint8)
    raise ValueError(f"unknown field {name!r}; one of {', '.join(FIELDS)}")


_COLD = """
import json, sys, time
import numpy as np
x = np.load(sys.argv[1]); mask = np.isfinite(x).astype(np.uint8)
start = time.thread_time(), time.perf_counter()
from satflow.codecs.registry import get_codec
out = {"import_cpu_s": time.thread_time() - start[0]}
if sys.argv[3] == "warmed":
    from satflow.codecs.warm import warm_kernels
    t = time.thread_time(); out["warm_kernels_wall_s"] = warm_kernels(); out["warm_kernels_cpu_s"] = time.thread_time() - t
name, params = json.loads(sys.argv[2]); codec = get_codec(name, **params)
for call in ("first", "second"):
    t = time.thread_time(); data = codec.encode(x, mask); out[call + "_encode_cpu_s"] = time.thread_time() - t
    t = time.thread_time(); codec.decode(data); out[call + "_decode_cpu_s"] = time.thread_time() - t
print(json.dumps(out))
"""


def cold_rows(x: np.ndarray, work: Path, eps: float = 0.5) -> list[dict]:
    """First and second encode/decode in fresh processes (thread CPU time), cold and after warm_kernels()."""
    np.save(work / "field.npy", np.where(x == x, x, np.nan))
    rows = []
    for family, spec, modes in (("sz3 (per feature)", ["sz3", {"tol": [eps] * x.shape[0]}], ("cold",)),
                                ("errorbound(constant)", ["errorbound", {"inner": "constant", "eps": eps}],
                                 ("cold", "warmed"))):
        for mode in modes:
            result = subprocess.run([sys.executable, "-c", _COLD, str(work / "field.npy"), json.dumps(spec), mode],
                                    capture_output=True, text=True, check=True, env=os.environ)
            row = {"family": family, "eps": eps, "mode": mode, **json.loads(result.stdout)}
            for call in ("first", "second"):
                for step in ("encode", "decode"):
                    row[f"{call}_{step}_mb_s"] = x.nbytes / 1e6 / row[f"{call}_{step}_cpu_s"]
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-learned", action="store_true", help="skip the learned context")
    parser.add_argument("--profile", action="store_true", help="cProfile errorbound(constant) at 0.5 K instead")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time by this thread's CPU time (default: the machine is shared) or elapsed time")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--fields", default="block", help=f"comma-separated, of {', '.join(FIELDS)}")
    parser.add_argument("--cold", action="store_true", help="also time first calls in fresh processes (0.5 K)")
    args = parser.parse_args()
    results = {"clock": args.clock, "repeats": args.repeats, "command": " ".join(sys.argv), "fields": {}}
    for name in args.fields.split(","):
        work = Path(tempfile.mkdtemp(prefix="satflow-throughput-"))
        try:
            x, mask = load_field(name, work)
            print(f"== {name}: {x.shape}, {mask.mean():.0%} valid, load {os.getloadavg()[0]:.1f}", flush=True)
            results["fields"][name] = run_field(x, mask, args, learned=name == "block" and not args.no_learned)
            if args.cold:
                results["fields"][name]["cold"] = cold_rows(x, work)
                for row in results["fields"][name]["cold"]:
                    print(f"  {row['mode']:6s} {row['family']:24s} first enc/dec {row['first_encode_mb_s']:6.1f} / "
                          f"{row['first_decode_mb_s']:6.1f} MB/s, second {row['second_encode_mb_s']:6.1f} / "
                          f"{row['second_decode_mb_s']:6.1f}", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if args.profile:
            return
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


def run_field(x: np.ndarray, mask: np.ndarray, args, learned: bool) -> dict:
    if args.profile:
        codec = get_codec("errorbound", inner="constant", eps=0.5)
        codec.decode(codec.encode(x, mask))  # compile first: the profile is of the steady state
        cProfile.runctx("codec.decode(codec.encode(x, mask))", globals(), locals(), "/tmp/errorbound.prof")
        pstats.Stats("/tmp/errorbound.prof").sort_stats("tottime").print_stats(18)
        return {}
    rows = []
    for eps in BOUNDS:
        for row in measure_rows([r for r in settings(x.shape[0], learned) if _eps(r[2]) == eps],
                                x, mask, args.repeats, clock(args.clock)):
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(f"{row['family']:40s} eps {row['eps']:<4} enc {row['encode_mb_s']:8.1f} dec {row['decode_mb_s']:8.1f} MB/s  "
                  f"ratio {row['ratio']:6.2f}  violations {row['violations']}  {row['sha256']}", flush=True)
    for eps in BOUNDS:
        sz3 = next(r for r in rows if r["family"].startswith("sz3") and r["eps"] == eps)
        for r in rows:
            if r["eps"] == eps and r is not sz3:
                r["x_sz3"] = {"encode": r["encode_mb_s"] / sz3["encode_mb_s"], "decode": r["decode_mb_s"] / sz3["decode_mb_s"],
                              "ratio": r["ratio"] / sz3["ratio"]}
                print(f"  eps {eps}: {r['family']:40s} encode {r['x_sz3']['encode']:.3f}x "
                      f"decode {r['x_sz3']['decode']:.3f}x ratio {r['x_sz3']['ratio']:.3f}x of SZ3")
    return {"shape": list(x.shape), "valid": float(mask.mean()), "rows": rows}


if __name__ == "__main__":
    main()
