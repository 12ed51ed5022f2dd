"""Where errorbound(constant)'s time goes: each phase of encode and decode on its own, thread CPU time,
best of 3, with SZ3 per feature and the whole codec (versions 5 and 3) timed in the same run; the
residual decoders of versions 4 and 5 alone and fused with the closed loop.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/codecs/phases.py \
        [shared-full amsua-full block] [--out FILE]

Fields as in throughput.py. The phases are the functions the codec calls, on the codec's own
inputs (x_hat of the inner `constant` codec), so they add up to the codec's time less Python glue.
"""
import json, os, shutil, sys, tempfile, time, zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from throughput import load_field  # noqa: E402
from satflow.codecs import container, kernels, prediction, residuals
from satflow.codecs.registry import get_codec


def _checksum(x_hat, mask):
    """What errorbound's x_hat checksum computes: CRC-32 of the valid values."""
    return zlib.crc32(kernels.valid_values(np.ascontiguousarray(x_hat, np.float32), np.ascontiguousarray(mask != 0)))


def best(fn, n=3):
    b = 1e9
    for _ in range(n):
        t = time.thread_time(); r = fn(); b = min(b, time.thread_time() - t)
    return b * 1e3, r

args = sys.argv[1:]
target = Path(args[args.index("--out") + 1]) if "--out" in args else None
names = [a for a in args if a != "--out" and Path(a) != target] or ["shared-full", "amsua-full"]
out = {}
for name in names:
    work = Path(tempfile.mkdtemp(prefix="satflow-phases-"))
    try:
        x, mask = load_field(name, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for eps in (0.5, 1.0):
        row = {"load": os.getloadavg()[0]}
        sz = get_codec("sz3", tol=[eps] * x.shape[0]); eb = get_codec("errorbound", inner="constant", eps=eps)
        d_sz, d_eb = sz.encode(x, mask), eb.encode(x, mask); sz.decode(d_sz); eb.decode(d_eb)
        row["sz3 encode"], _ = best(lambda: sz.encode(x, mask)); row["sz3 decode"], _ = best(lambda: sz.decode(d_sz))
        row["errorbound encode"], _ = best(lambda: eb.encode(x, mask)); row["errorbound decode"], _ = best(lambda: eb.decode(d_eb))
        row["ratio sz3"], row["ratio errorbound"] = x.nbytes / len(d_sz), x.nbytes / len(d_eb)
        epsf = np.full(x.shape[0], eps); step = 2 * epsf
        valid = np.ascontiguousarray(mask != 0)
        x_hat32 = np.asarray(eb.inner.decode_payloads(eb.inner.encode_payloads([x], [mask]), [mask])[0], np.float32)
        v3 = get_codec("errorbound", inner="constant", eps=eps); v3.stream_version = 3
        d_v3 = v3.encode(x, mask); v3.decode(d_v3)
        row["errorbound v3 codec encode"], _ = best(lambda: v3.encode(x, mask)); row["errorbound v3 codec decode"], _ = best(lambda: v3.decode(d_v3))
        row["enc: finite_fill"], filled = best(lambda: prediction.finite_fill(x_hat32, mask))
        row["enc: fit noise draws"], noise = best(lambda: np.random.default_rng(0).uniform(-1.0, 1.0, x.shape))
        row["enc: fit noisy_inputs"], noisy = best(lambda: kernels.noisy_inputs(np.ascontiguousarray(x), valid, noise, epsf, filled))
        row["enc: fit total"], coef = best(lambda: prediction.fit(x, mask, filled, epsf))
        pred = prediction.LinearPredictor(coef, x.shape[0])
        row["enc: closed loop"], (rec, q) = best(lambda: prediction.run(filled, mask, pred, step, x=x))
        cm = residuals.context_classes(residuals.CONTEXT_SCHEMES[1])
        row["enc: contexts"], ctx = best(lambda: kernels.point_contexts(q, valid, cm))
        row["enc: group_symbols"], (lo, hi, counts) = best(lambda: kernels.group_symbols(q, valid, 127, ctx, 5))
        freqs = kernels.all_frequencies(counts, lo, hi)
        row["enc: rans_encode"], _ = best(lambda: kernels.rans_encode(q, valid, lo, hi, freqs, int(valid.sum()), ctx, 5))
        row["enc: encode_residuals total"], secs = best(lambda: residuals.encode_residuals(q, mask, 4))
        row["enc: exceedances"], _ = best(lambda: kernels.exceedances(np.ascontiguousarray(x), rec.astype(np.float32), valid, epsf))
        row["enc+dec: checksum of x_hat"], _ = best(lambda: _checksum(x_hat32, mask))
        row["enc: pack_mask (now)"], (kind, mb) = best(lambda: container.pack_mask(mask))
        from numcodecs import Zstd
        row["enc: pack_mask at zstd 19 (before)"], mb9 = best(lambda: bytes(Zstd(level=19).encode(np.packbits(mask.ravel()))))
        row["mask bytes now / before"] = [len(mb), len(mb9)]
        row["enc: container framing (crc32 + join)"], _ = best(lambda: zlib.crc32(d_eb))
        row["dec: unpack_container (crc + mask)"], _ = best(lambda: container.unpack_container(d_eb))
        row["dec: rans_decode alone (not used: fused below)"], _ = best(lambda: residuals.decode_residuals(mask, *secs, 4))
        model = residuals.residual_model(mask, *secs, 4)
        row["dec: fused rANS + closed loop (linear_decode)"], _ = best(lambda: pred.decode_stream(x_hat32, model, step))
        secs5 = residuals.encode_residuals(q, mask, 5)
        row["dec: rans_decode alone, version 5 (simple decoder)"], _ = best(lambda: residuals.decode_residuals(mask, *secs5, 5))
        m5 = residuals.residual_model(mask, *secs5, 5)
        q5 = np.zeros(mask.shape, np.int64)
        row["dec: rans_decode alone, version 5 (fast decoder)"], _ = best(lambda: kernels.rans_decode_fast(
            m5.words, m5.valid, m5.lo, m5.hi, m5.freqs, m5.escapes, q5, m5.class_map, m5.lanes))
        row["dec: fused rANS + closed loop (linear_decode), version 5"], _ = best(lambda: pred.decode_stream(x_hat32, m5, step))
        row["dec: fill_values"], _ = best(lambda: prediction.fill_values(x_hat32, valid))
        out[f"{name} eps {eps}"] = row
        print(name, eps, json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()}, indent=0), flush=True)
if target:
    target.write_text(json.dumps({"command": " ".join(sys.argv), "unit": "ms (thread CPU, best of 3)", "fields": out},
                                 indent=1))
