"""Codec benchmark: rate-distortion, ratio at max-error bounds, violations and throughput, from real bitstreams.

Every codec runs on four kinds of data (`benchdata.py`; one (feature, lat, lon) block per time step,
NaN gaps kept):
- amsua: AMSU-A-like brightness temperatures (15 `tmbrs` channels, swath gaps), satflow's own sample
  generator (held-out seed 1) through `satflow ingest`, or any store given with --store;
- unshared: a generated field whose 15 channels share only their large-scale structure (independent
  red-spectrum small scales and white noise per channel, in K, the AMSU sample's gaps): data whose
  structure the error-bounded coder's cross-channel context cannot exploit;
- ostia: OSTIA monthly SST from iris-sample-data (real, one feature, land invalid);
- colpex, uk_hires: real Unified Model air potential temperature on model levels (levels become
  features), from the PP files of iris-sample-data.

Codecs: lossless, bit-rounding (keepbits sweep and by bit information), SZ3 (one 3-D block and per
feature), ZFP, errorbound around bit-rounding, SZ3 and the constant inner (the least-squares causal
context), and, where the checkpoint's features match (the 15-channel AMSU data), the learned
transform codec `vaeformer` at a qstep sweep and `errorbound` with the learned context. The classic
sweeps reach down to ~0.1 bits per value so that learned and classic codecs meet at equal rates.
Bits are the bytes of the containers (header, mask and checksum included). Errors are over valid
points; error-bounded settings also count the points beyond their bound. Throughput is MB/s of
float32 on one core (OMP, OpenBLAS, numba and torch at one thread), best of --repeats timed runs.

Outputs (under --out, default results/): codecs.json (every row, the ratio at 0.1/0.5/1.0 K and
relative to SZ3 per feature, the same-rate comparison of vaeformer with SZ3 per feature, the issue's
targets, throughput summaries, the command) and codecs-<dataset>.png (RMSE and max error against
bits per value, log axes).

    python benchmarks/codecs/run.py            # full run, every dataset: about 11 minutes on 2 shared cores
    python benchmarks/codecs/run.py --quick    # smoke run: 10-50 s
    python benchmarks/codecs/run.py --datasets amsua unshared --checkpoint DIR   # a subset, another checkpoint
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one core for every library, before numpy and numba start their pools
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from benchdata import (  # noqa: E402  (re-exported: benchmarks/codecs/learned.py reads them from here)
    amsua_dataset,
    colpex_dataset,
    ostia_dataset,
    store_dataset,
    uk_hires_dataset,
    unshared_dataset,
)
from satflow.codecs.registry import get_codec  # noqa: E402
from satflow.metrics import ErrorSums, merge_all  # noqa: E402

__all__ = ["BOUNDS", "amsua_dataset", "ostia_dataset", "codec_settings", "run_dataset", "measure", "plot", "machine"]

BOUNDS = (0.1, 0.5, 1.0)  # max-error bounds, in the data's units (K for every dataset)
DATASETS = ("amsua", "unshared", "ostia", "colpex", "uk_hires")
REFERENCE = "sz3 (per feature)"  # the classic codec the targets are relative to
CLASSIC = ("lossless", "bitround", "bitround-auto", "sz3", "sz3 (per feature)", "zfp")
# The targets (issue 12, item 4): error-bounded ratio / SZ3 per feature at 0.5 and 1.0 K.
TARGETS = {"amsua": 1.5, "unshared": 1.2, "ostia": 1.2, "colpex": 1.2, "uk_hires": 1.2, "store": 1.5}


# --- codec settings -------------------------------------------------------------------------------
# Absolute tolerances (K). The sweep runs down to 32 K so that SZ3's and ZFP's curves reach ~0.1 bits
# per value on the AMSU-like data, where the learned transform codec lives.
TOLS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
QUICK_TOLS = (0.05, 0.5, 4.0)
KEEPBITS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12)
QSTEPS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)  # vaeformer latent step scales: one model, several rates
ERRORBOUND_EXTRA = (2.0, 4.0)  # errorbound(constant) beyond the bounds: its curve at lower rates


def codec_settings(quick: bool, learned: str | None, learned_params: dict, *,
                   ablations: bool = True) -> list[tuple[str, str, dict]]:
    """(family, codec name, params) for every setting to measure.

    Each baseline runs at its own defaults (one setting per parameter value; no tuning per dataset)
    and at the same bounds as errorbound. `ablations=False` leaves out the learned error-bounded
    ablations (context=causal / none around the learned inner), which only `learned.py` reports.
    """
    tols = list(QUICK_TOLS if quick else TOLS)
    keepbits = [2, 4, 7] if quick else list(KEEPBITS)
    # `constant` (each feature's valid mean) costs the container's header and lossless mask and
    # nothing else: the floor under every codec's bits per value on gapped data.
    settings = [("lossless", "lossless", {}), ("constant (mask floor)", "constant", {})]
    settings += [("bitround", "bitround", {"keepbits": k}) for k in keepbits]
    settings += [("bitround-auto", "bitround", {"information": i}) for i in ((0.99,) if quick else (0.9, 0.99, 0.9999))]
    settings += [("sz3", "sz3", {"tol": t}) for t in tols]
    # SZ3 over each feature as a 2-D array instead of one 3-D block: better on channels that are not
    # smooth along the feature axis (run_dataset expands `per_feature` into one tol per feature).
    settings += [("sz3 (per feature)", "sz3", {"tol": t, "per_feature": True}) for t in tols]
    # ZFP's errors stay well below its tolerance, so its sweep goes further to reach low rates.
    settings += [("zfp", "zfp", {"tol": t}) for t in tols + ([64.0] if quick else [64.0, 128.0, 256.0, 512.0])]
    settings += [("errorbound(bitround-3)", "errorbound",
                  {"inner": "bitround", "inner_params": {"keepbits": 3}, "eps": b}) for b in BOUNDS]
    settings += [("errorbound(sz3)", "errorbound", {"inner": "sz3", "eps": b}) for b in BOUNDS]
    # The causal context alone, around an inner codec that costs nothing: the classic reference
    # that tells what a learned inner codec adds.
    eps = BOUNDS if quick else BOUNDS + ERRORBOUND_EXTRA
    settings += [("errorbound(constant)", "errorbound", {"inner": "constant", "eps": b}) for b in eps]
    # Ablation: the same coder on one feature at a time (blocks of shape (1, lat, lon)), so no context
    # from other channels: what is left of its gain over SZ3 is spatial prediction, entropy coding and
    # not coding gaps (run_dataset splits the blocks).
    settings += [("errorbound(constant), features apart", "errorbound",
                  {"inner": "constant", "eps": b, "split_features": True}) for b in BOUNDS]
    if learned:
        # qstep scales the latent quantisation step: one trained model, several rates.
        qsteps = [1.0] if quick else list(QSTEPS)
        settings += [(learned, learned, {**learned_params, "qstep": q}) for q in qsteps]
        settings += learned_bounded_settings(learned, learned_params, quick, ablations=ablations)
    return settings


SLOW_S = 8.0  # seconds of encode + decode beyond which one timed run is enough (the learned context)


def _has_context_network(checkpoint: str | None) -> bool:
    from satflow.codecs.learned.checkpoint import load_checkpoint

    return checkpoint is not None and load_checkpoint(checkpoint).context is not None


def learned_bounded_settings(learned: str, learned_params: dict, quick: bool, *,
                             ablations: bool = True) -> list[tuple[str, str, dict]]:
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
    learned_context = [("errorbound(constant, learned context)", "errorbound",
                        {"inner": "constant", "eps": b, "context": "learned", "checkpoint": checkpoint})
                       for b in BOUNDS]
    if quick:
        return learned_context[1:2]
    settings = [(f"errorbound({learned})", "errorbound", {**inner, "eps": b, "context": "learned"}) for b in BOUNDS]
    settings += learned_context
    if not ablations:
        return settings
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


def _learned_features(codec, params: dict) -> list[str] | None:
    """Features the weights a setting uses were trained on (learned inner or learned context); None for classic ones."""
    inner = getattr(codec, "inner", None)
    features = getattr(codec, "features", None) or (getattr(inner, "features", None) if inner is not None else None)
    if features is None and params.get("context") == "learned":
        checkpoint = params.get("checkpoint") or params.get("inner_params", {}).get("checkpoint")
        if checkpoint:
            features = json.loads((Path(checkpoint) / "meta.json").read_text()).get("features")
    return features


def run_dataset(data: dict, settings: list[tuple[str, str, dict]], repeats: int = 1) -> dict:
    """Measure every setting on one dataset; learned codecs trained on other features are skipped."""
    rows, skipped = [], set()
    for family, name, params in settings:
        if family in skipped:
            continue
        if params.get("per_feature"):
            params = {**{k: v for k, v in params.items() if k != "per_feature"},
                      "tol": [params["tol"]] * len(data["features"])}
        x, mask, features = data["x"], data["mask"], data["features"]
        if params.get("split_features"):  # every feature its own (1, lat, lon) block
            if x.shape[1] == 1:
                continue  # already one feature per block
            params = {k: v for k, v in params.items() if k != "split_features"}
            x, mask = x.reshape(-1, 1, *x.shape[2:]), mask.reshape(-1, 1, *mask.shape[2:])
            features = ["all features"]
        codec = get_codec(name, **params)
        trained_on = _learned_features(codec, params)
        if trained_on is not None and list(trained_on) != list(data["features"]):
            print(f"  {data['name']:8s} {family}: skipped, its checkpoint was trained on other features "
                  f"({trained_on[0]}.. x {len(trained_on)}, the data has {data['features'][0]}.. x "
                  f"{len(data['features'])})", flush=True)
            skipped.add(family)
            continue
        tol = params.get("tol")
        level = params.get("eps", tol[0] if isinstance(tol, list) else tol)  # the setting's bound, if any
        row = {"family": family, "codec": codec.describe(), "bound_setting": level,
               **measure(codec, x, mask, data["source_bytes"], features, eps=params.get("eps"), repeats=repeats)}
        rows.append(row)
        print(f"  {data['name']:8s} {row['codec'][:60]:60s} {row['bits_per_value']:7.3f} b/v  "
              f"rmse {row['rmse']:.4f}  max {row['max_abs_error']:.4f}  "
              f"enc {row['encode_mb_s']:6.1f} dec {row['decode_mb_s']:6.1f} MB/s"
              + (f"  violations {row['bound_violations']}" if "bound_violations" in row else ""), flush=True)
    out = {
        "source": data["source"], "shape": list(data["x"].shape), "features": data["features"],
        "valid_fraction": float(data["mask"].mean()), "source_bytes": data["source_bytes"],
        "megabytes": data["x"].nbytes / 1e6, "results": rows,
    }
    for key in ("level_heights_m", "units"):
        if key in data:
            out[key] = data[key]
    return {**out, **analyse(out)}


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


def ratio_vs_reference(ratios: dict, reference: str = REFERENCE) -> dict:
    """Each family's ratio at each bound divided by the reference's (SZ3 per feature); None where either has none."""
    base = ratios.get(reference, {})
    return {family: {b: (v / base[b] if v and base.get(b) else None) for b, v in entry.items()}
            for family, entry in ratios.items()}


def throughput_summary(rows: list[dict], reference: str = REFERENCE) -> dict:
    """Per family: median encode and decode MB/s, and the same divided by the reference's (SZ3 per feature).

    Families with a tolerance (SZ3, ZFP, errorbound) are taken at the settings whose tolerance is one
    of BOUNDS (the same bounds for all, so speeds compare at equal settings); the others over all settings.
    """
    families: dict[str, list[dict]] = {}
    for row in rows:
        families.setdefault(row["family"], []).append(row)
    medians = {}
    for family, members in families.items():
        at_bounds = [r for r in members if _bound_of(r) in BOUNDS]
        chosen = at_bounds or members
        medians[family] = {"encode_mb_s": float(np.median([r["encode_mb_s"] for r in chosen])),
                           "decode_mb_s": float(np.median([r["decode_mb_s"] for r in chosen])),
                           "settings": [r["codec"] for r in chosen]}
    ref = medians.get(reference)
    for entry in medians.values():
        entry["encode_vs_sz3_per_feature"] = entry["encode_mb_s"] / ref["encode_mb_s"] if ref else None
        entry["decode_vs_sz3_per_feature"] = entry["decode_mb_s"] / ref["decode_mb_s"] if ref else None
    return medians


def _bound_of(row: dict) -> float | None:
    """The tolerance or eps a row was measured at (from the codec's description in older results)."""
    if "bound_setting" in row:
        return row["bound_setting"]
    import re

    match = re.search(r"(?:eps|tol)=\[?([0-9.]+)", row["codec"])
    return float(match.group(1)) if match else None


def analyse(data: dict) -> dict:
    """The figures derived from a dataset's rows (ratios at bounds, x SZ3, throughput, same-rate comparison)."""
    rows = data["results"]
    out = {"ratio_at_bound": ratio_at_bounds(rows)}
    out["ratio_vs_sz3_per_feature"] = ratio_vs_reference(out["ratio_at_bound"])
    out["bound_violations"] = {row["codec"] + ("" if row["family"] != "errorbound(constant), features apart"
                                               else " [features apart]"): row["bound_violations"]
                               for row in rows if "bound_violations" in row}
    out["throughput"] = throughput_summary(rows)
    if any(r["family"] == "vaeformer" for r in rows):
        out["same_rate_vs_sz3_per_feature"] = same_rate_comparison(rows, "vaeformer")
    # RMSE at equal rate is another question than the ratio at a max-error bound: a uniform
    # quantiser of step 2 eps makes RMSE ~ eps / sqrt(3), where SZ3's errors concentrate near 0.
    out["rmse_at_equal_rate_vs_sz3_per_feature"] = {
        family: {k: v for k, v in same_rate_comparison(rows, family, window=(0.0, 100.0)).items() if k != "points"}
        for family in sorted({r["family"] for r in rows}) if family.startswith("errorbound") and family != REFERENCE}
    return out


def _curve(rows: list[dict], family: str) -> tuple[np.ndarray, np.ndarray]:
    """(bits per value, log RMSE) of a family's lower envelope, sorted by rate (dominated points dropped)."""
    points = sorted((r["bits_per_value"], r["rmse"]) for r in rows if r["family"] == family and r["rmse"] > 0)
    front: list[tuple[float, float]] = []
    for bits, rmse in points:
        if not front or rmse < front[-1][1]:
            front.append((bits, rmse))
    return np.array([p[0] for p in front]), np.log([p[1] for p in front])


def same_rate_comparison(rows: list[dict], learned: str, reference: str = REFERENCE,
                         window: tuple[float, float] = (0.1, 1.0)) -> dict:
    """The learned codec against the reference (SZ3 per feature) at equal bits per value.

    For each learned setting, the reference's RMSE interpolated log-linearly along its own curve
    (lower envelope, RMSE against bits per value) at the learned setting's rate; None outside the
    reference's measured range. Then, on a fine grid over `window` (bits per value) where both curves
    were measured, the rates at which the learned curve (also log-linear between its points) lies
    below the reference's: `wins_bpv` lists the intervals, empty when it never does.
    """
    ref_bits, ref_log = _curve(rows, reference)
    own_bits, own_log = _curve(rows, learned)
    points = []
    for row in sorted((r for r in rows if r["family"] == learned), key=lambda r: r["bits_per_value"]):
        rate = row["bits_per_value"]
        inside = len(ref_bits) > 1 and ref_bits[0] <= rate <= ref_bits[-1]
        at_rate = float(np.exp(np.interp(rate, ref_bits, ref_log))) if inside else None
        points.append({"codec": row["codec"], "bits_per_value": rate, "rmse": row["rmse"],
                       "max_abs_error": row["max_abs_error"], "reference_rmse_at_same_rate": at_rate,
                       "rmse_ratio_learned_to_reference": row["rmse"] / at_rate if at_rate else None,
                       "learned_better": (row["rmse"] < at_rate) if at_rate else None})
    wins: list[list[float]] = []
    low, high = max(window[0], ref_bits[0], own_bits[0]), min(window[1], ref_bits[-1], own_bits[-1])
    if len(ref_bits) > 1 and len(own_bits) > 1 and low < high:
        grid = np.linspace(low, high, 901)
        below = np.interp(grid, own_bits, own_log) < np.interp(grid, ref_bits, ref_log)
        start = None
        for rate, win in zip(grid, below):
            if win and start is None:
                start = rate
            if not win and start is not None:
                wins.append([float(start), float(rate)])
                start = None
        if start is not None:
            wins.append([float(start), float(grid[-1])])
    return {"reference": reference, "learned": learned, "points": points,
            "compared_bpv": [float(low), float(high)] if low < high else None, "wins_bpv": wins,
            "learned_below_reference_somewhere": bool(wins)}


def targets(datasets: dict) -> dict:
    """The issue's targets per dataset: error-bounded ratio / SZ3 per feature at 0.5 and 1.0 K, violations.

    Also the best classic codec at each bound (SZ3 as one 3-D block beats SZ3 per feature on
    smooth multi-level data), so a target met against SZ3 per feature is not read as a win over all.
    """
    out = {}
    for name, data in datasets.items():
        ratios, relative = data["ratio_at_bound"], data["ratio_vs_sz3_per_feature"]
        bounded = {f: relative[f] for f in relative if f.startswith("errorbound")}
        target = TARGETS.get(name, 0)
        entry = {"target_vs_sz3_per_feature": TARGETS.get(name), "violations": sum(data["bound_violations"].values())}
        for bound in ("0.1", "0.5", "1.0"):
            best = max(((v[bound], f) for f, v in bounded.items() if v.get(bound)), default=(None, None))
            classic = max(((ratios[f][bound], f) for f in CLASSIC if ratios.get(f, {}).get(bound)), default=(None, None))
            causal = ratios.get("errorbound(constant)", {}).get(bound)
            entry[bound] = {"errorbound(constant)": bounded.get("errorbound(constant)", {}).get(bound),
                            "best": best[0], "best_family": best[1],
                            "best_classic": classic[1], "best_classic_ratio": classic[0],
                            "errorbound(constant)_vs_best_classic": causal / classic[0] if causal and classic[0] else None,
                            "met_by_errorbound(constant)": (bounded.get("errorbound(constant)", {}).get(bound) or 0) >= target,
                            "met_by_best": best[0] is not None and best[0] >= target}
        if "same_rate_vs_sz3_per_feature" in data:
            same = data["same_rate_vs_sz3_per_feature"]
            entry["vaeformer_below_sz3_per_feature_in_0.1-1_bpv"] = same["learned_below_reference_somewhere"]
            entry["vaeformer_wins_bpv"] = same["wins_bpv"]
        out[name] = entry
    return out


# --- plotting -------------------------------------------------------------------------------------
STYLE = {"lossless": ("black", "--"), "bitround": ("tab:brown", "-"), "bitround-auto": ("tab:olive", ":"),
         "sz3": ("tab:blue", "--"), "sz3 (per feature)": ("tab:blue", "-"), "zfp": ("tab:gray", "-"), "constant (mask floor)": ("black", ":"),
         "errorbound(bitround-3)": ("tab:pink", ":"), "errorbound(sz3)": ("tab:purple", ":"),
         "errorbound(constant)": ("tab:red", "-"), "errorbound(constant), features apart": ("tab:red", ":"),
         "vaeformer": ("tab:green", "-"),
         "errorbound(vaeformer)": ("tab:cyan", "--"), "errorbound(constant, learned context)": ("tab:orange", "-")}


def plot_dataset(name: str, data: dict, out: Path) -> None:
    """RMSE and max error against bits per value (log axes) for every family on one dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families: dict[str, list[dict]] = {}
    for row in data["results"]:
        families.setdefault(row["family"], []).append(row)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.8))
    for ax, key, label in ((axes[0], "rmse", "RMSE"), (axes[1], "max_abs_error", "max abs error")):
        for family, rows in families.items():
            rows = sorted(rows, key=lambda r: r["bits_per_value"])
            color, ls = STYLE.get(family, (None, "-"))
            bold = family in ("sz3 (per feature)", "errorbound(constant)", "vaeformer",
                              "errorbound(constant, learned context)")
            if all(r[key] == 0 for r in rows):  # exact codecs have no error to put on a log axis
                ax.axvline(rows[0]["bits_per_value"], color="black", ls="--", lw=1, label=f"{family} (exact)")
                continue
            kept = [r for r in rows if r[key] > 0]
            ax.plot([r["bits_per_value"] for r in kept], [r[key] for r in kept], marker="o", ls=ls, color=color,
                    label=family, lw=2.2 if bold else 1.0, ms=5 if bold else 3, alpha=1.0 if bold else 0.75)
        ax.set(xscale="log", yscale="log", xlabel="bits per value (all cells, container bytes)",
               ylabel=f"{label} over valid points ({data.get('units', 'K')})", title=f"{name}: {label} vs rate")
        ax.grid(True, which="both", alpha=0.3)
        ax.axvspan(0.1, 1.0, color="grey", alpha=0.06)
    for bound in BOUNDS:
        axes[1].axhline(bound, color="grey", ls=":", lw=0.8)
    axes[0].legend(fontsize=7, loc="lower left")
    shape = " x ".join(str(v) for v in data["shape"])
    fig.suptitle(f"{name} ({shape}, {100 * data['valid_fraction']:.0f}% valid): {data['source'][:150]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot(results: dict, out: Path) -> None:
    """One figure per dataset: `out` with the dataset's name before the suffix (codecs-amsua.png, ...)."""
    for name, data in results["datasets"].items():
        plot_dataset(name, data, out.with_name(f"{out.stem}-{name}{out.suffix}"))


def machine() -> dict:
    """Where the throughput was measured: platform, cores, thread settings, and whether a GPU was there."""
    info = {"platform": platform.platform(), "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if "torch" in sys.modules:  # torch threads matter for learned codecs; importing torch here would not
        import torch

        info.update(torch_threads=torch.get_num_threads(), cuda_available=torch.cuda.is_available())
    return info


def _num(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_tables(results: dict) -> str:
    """The README's tables, from a results dict: per dataset ratio at bounds (and x SZ3 per feature),
    throughput on one core, violations; vaeformer against SZ3 per feature at equal rates; the targets."""
    lines = [f"Last run: `{results['command']}` ({results['machine']['platform']}, {results['machine']['cpus']} "
             f"CPUs, one thread; commit {results['code']['commit'][:10]}"
             + (f", uncommitted: {', '.join(results['code']['uncommitted'])}" if results["code"]["uncommitted"] else "")
             + f"; {results['seconds']['total']:.0f} s"
             + (f"; kept from an earlier run: {', '.join(results['kept_from_an_earlier_run'])}"
                if results.get("kept_from_an_earlier_run") else "") + ").", ""]
    for name, data in results["datasets"].items():
        shape = " x ".join(str(v) for v in data["shape"])
        measured = data.get("measured")
        lines += [f"**{name}** ({shape}, {100 * data['valid_fraction']:.0f}% valid, {data['megabytes']:.1f} MB): "
                  f"{data['source']}"
                  + (f" Measured {measured['date']} by `{measured['command']}` in {measured['seconds']:.0f} s"
                     f" (commit {measured['code']['commit'][:10]})." if measured else ""), "",
                  "| codec | ratio at 0.1 K | 0.5 K | 1.0 K | x SZ3/feature 0.1 / 0.5 / 1.0 K | encode MB/s | "
                  "decode MB/s | x SZ3/feature enc / dec | violations |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        violations: dict[str, int] = {}
        for row in data["results"]:
            if "bound_violations" in row:
                violations[row["family"]] = violations.get(row["family"], 0) + row["bound_violations"]
        for family, ratios in data["ratio_at_bound"].items():
            rel = data["ratio_vs_sz3_per_feature"][family]
            speed = data["throughput"][family]
            lines.append(
                f"| {family} | {_num(ratios['0.1'])} | {_num(ratios['0.5'])} | {_num(ratios['1.0'])} | "
                + " / ".join(_num(rel[b], 2) for b in ("0.1", "0.5", "1.0"))
                + f" | {_num(speed['encode_mb_s'])} | {_num(speed['decode_mb_s'])} | "
                f"{_num(speed['encode_vs_sz3_per_feature'], 2)} / {_num(speed['decode_vs_sz3_per_feature'], 2)} | "
                f"{violations.get(family, '')} |")
        lines.append("")
        rmse_rate = data.get("rmse_at_equal_rate_vs_sz3_per_feature", {})
        if rmse_rate:
            parts = []
            for family, entry in rmse_rate.items():
                wins = ", ".join(f"{a:.2f}-{b:.2f}" for a, b in entry["wins_bpv"]) or "nowhere"
                span = entry["compared_bpv"]
                parts.append(f"{family} {wins}" + (f" (of {span[0]:.2f}-{span[1]:.2f} compared)" if span else ""))
            lines += ["RMSE at equal bits per value, bpv where the error-bounded codec is below SZ3 per feature: "
                      + "; ".join(parts) + ".", ""]
        same = data.get("same_rate_vs_sz3_per_feature")
        if same:
            lines += [f"{same['learned']} against {same['reference']} at equal bits per value ({name}; SZ3's RMSE "
                      "interpolated log-linearly along its own curve):", "",
                      "| setting | bits/value | RMSE (K) | max error (K) | SZ3/feature RMSE at that rate | ratio | below SZ3 |",
                      "|---|---:|---:|---:|---:|---:|---|"]
            for point in same["points"]:
                qstep = point["codec"].split("qstep=")[-1].rstrip(")") if "qstep=" in point["codec"] else point["codec"]
                verdict = {True: "yes", False: "no", None: "outside SZ3's range"}[point["learned_better"]]
                lines.append(f"| qstep {qstep} | {point['bits_per_value']:.3f} | {point['rmse']:.2f} | "
                             f"{point['max_abs_error']:.0f} | {_num(point['reference_rmse_at_same_rate'], 2)} | "
                             f"{_num(point['rmse_ratio_learned_to_reference'], 2)} | {verdict} |")
            wins = ", ".join(f"{a:.2f}-{b:.2f}" for a, b in same["wins_bpv"]) or "nowhere"
            lines += ["", f"Rates (0.1-1 bpv, where both curves were measured: {same['compared_bpv']}) at which "
                      f"{same['learned']} is below {same['reference']}: {wins}.", ""]
    lines += ["| dataset | target (x SZ3/feature) | errorbound(constant) x SZ3/feature 0.5 / 1.0 K | best error-bounded "
              "x SZ3/feature 0.5 / 1.0 K | best classic at 0.5 / 1.0 K | errorbound(constant) x best classic 0.5 / 1.0 K "
              "| violations |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, entry in results["targets"].items():
        best = " / ".join(f"{_num(entry[b]['best'], 2)} ({entry[b]['best_family']})" for b in ("0.5", "1.0"))
        classic = " / ".join(f"{entry[b].get('best_classic')} {_num(entry[b].get('best_classic_ratio'))}"
                             for b in ("0.5", "1.0"))
        versus = " / ".join(_num(entry[b].get("errorbound(constant)_vs_best_classic"), 2) for b in ("0.5", "1.0"))
        lines.append(f"| {name} | {entry['target_vs_sz3_per_feature']} | "
                     f"{_num(entry['0.5']['errorbound(constant)'], 2)} / {_num(entry['1.0']['errorbound(constant)'], 2)} | "
                     f"{best} | {classic} | {versus} | {entry['violations']} |")
    return "\n".join(lines) + "\n"


def load_datasets(names: list[str], work: Path, args) -> list[dict]:
    """The datasets asked for, in order; `unshared` takes the AMSU sample's grid and gaps."""
    amsua = None
    if "amsua" in names or "unshared" in names:
        amsua = store_dataset(args.store, args.steps) if args.store else \
            amsua_dataset(work, args.steps, args.resolution, args.seed)
    loaders = {"amsua": lambda: amsua,
               "unshared": lambda: unshared_dataset(np.ones_like(amsua["mask"]) if args.unshared_no_gaps else amsua["mask"],
                                                    white_noise=tuple(args.unshared_white_noise)),
               "ostia": lambda: ostia_dataset(args.steps), "colpex": lambda: colpex_dataset(args.steps),
               "uk_hires": lambda: uk_hires_dataset(args.steps)}
    return [loaders[name]() for name in names]


def main() -> None:
    from satflow.data import AMSUA_CHECKPOINT

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 steps, 3-degree AMSU grid, few settings (seconds)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--steps", type=int, default=4, help="time steps per dataset (at most those a file has)")
    parser.add_argument("--resolution", type=float, default=1.0, help="grid spacing of the AMSU-like sample (degrees)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the AMSU-like sample (training data uses 0)")
    parser.add_argument("--store", type=Path, help="benchmark this satflow store instead of the generated AMSU sample")
    parser.add_argument("--learned", default="vaeformer", help="registered learned codec to include ('none': none)")
    parser.add_argument("--checkpoint", default=str(AMSUA_CHECKPOINT),
                        help="checkpoint of --learned (default: the shipped satflow/data/amsua-vaeformer)")
    parser.add_argument("--learned-param", action="append", default=[], metavar="KEY=VALUE",
                        help="extra parameter of the learned codec, e.g. device=cuda (repeatable)")
    parser.add_argument("--ablations", action="store_true",
                        help="also the learned error-bounded ablations (context=causal / none around vaeformer)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting; throughput is the best")
    parser.add_argument("--unshared-white-noise", nargs=2, type=float, default=[0.15, 0.6], metavar=("LO", "HI"),
                        help="range of the per-channel white-noise std of the unshared field (K)")
    parser.add_argument("--unshared-no-gaps", action="store_true",
                        help="the unshared field without the AMSU sample's gaps (every cell valid)")
    parser.add_argument("--families", metavar="REGEX",
                        help="only the codec families whose name matches (e.g. 'sz3 \\(per|errorbound\\(constant\\)')")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--tables", type=Path, metavar="JSON",
                        help="re-derive an earlier run's figures from its measured rows (JSON, tables .md, plots), "
                             "measuring nothing")
    args = parser.parse_args()
    if args.tables:
        results = json.loads(args.tables.read_text())
        for data in results["datasets"].values():
            data.update(analyse(data))
        results["targets"] = targets(results["datasets"])
        args.tables.write_text(json.dumps(results, indent=2, default=float))  # measurements unchanged
        plot(results, args.tables.with_suffix(".png"))
        args.tables.with_suffix(".md").write_text(markdown_tables(results))
        print(args.tables.with_suffix(".md").read_text())
        return
    if args.quick:
        args.steps, args.resolution, args.repeats = 2, 3.0, 1
    learned = None if args.learned in ("", "none") else args.learned
    learned_params = {k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.learned_param)}
    if learned and args.checkpoint:
        learned_params["checkpoint"] = args.checkpoint
    if learned:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    settings = codec_settings(args.quick, learned, learned_params, ablations=args.ablations)
    if args.families:
        import re

        settings = [s for s in settings if re.search(args.families, s[0])]

    work = Path(tempfile.mkdtemp(prefix="satflow-codec-bench-"))
    started = time.perf_counter()
    command = "python benchmarks/codecs/run.py " + " ".join(sys.argv[1:])
    code = _code_version()
    checkpoint = {"codec": learned, **learned_params, "fingerprint": _fingerprint(learned_params.get("checkpoint"))} \
        if learned else None
    datasets = {}
    try:
        for data in load_datasets(args.datasets, work, args):
            begun = time.perf_counter()
            datasets[data["name"]] = run_dataset(data, settings, args.repeats)
            datasets[data["name"]]["measured"] = {
                "command": command, "code": code, "learned": checkpoint, "seconds": round(time.perf_counter() - begun, 1),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "codecs-quick" if args.quick else "codecs"
    previous = args.out / f"{stem}.json"
    kept = {}
    if set(args.datasets) != set(DATASETS) and previous.exists():  # a subset refreshes those datasets only
        kept = {k: v for k, v in json.loads(previous.read_text())["datasets"].items() if k not in datasets}
    datasets = {**kept, **datasets}
    datasets = {name: datasets[name] for name in [*DATASETS, "store"] if name in datasets}
    results = {
        "command": command, "machine": machine(), "code": code, "repeats": args.repeats, "quick": args.quick,
        "steps": args.steps, "resolution": args.resolution, "bounds": list(BOUNDS), "learned": checkpoint,
        "seconds": {"total": round(time.perf_counter() - started, 1),
                    **{name: d["measured"]["seconds"] for name, d in datasets.items() if "measured" in d}},
        "kept_from_an_earlier_run": sorted(kept), "targets": targets(datasets), "datasets": datasets,
    }
    previous.write_text(json.dumps(results, indent=2, default=float))
    plot(results, args.out / f"{stem}.png")
    (args.out / f"{stem}.md").write_text(markdown_tables(results))
    print(json.dumps({"ratio_vs_sz3_per_feature": {n: {f: v for f, v in d["ratio_vs_sz3_per_feature"].items()
                                                       if f.startswith("errorbound")} for n, d in datasets.items()},
                      "targets": results["targets"]}, indent=1, default=lambda v: round(v, 3)))
    print(f"wrote {args.out / (stem + '.json')}, {stem}.md and {stem}-<dataset>.png in {results['seconds']['total']} s")


def _code_version() -> dict:
    """The commit measured and the package files that differed from it (uncommitted work changes figures)."""
    import subprocess

    def git(*argv: str) -> str:
        try:
            return subprocess.run(["git", *argv], cwd=HERE, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted": [line[3:] for line in git("status", "--porcelain", "--", "satflow").splitlines()]}


def _fingerprint(checkpoint: str | None) -> dict | None:
    """The checkpoint's weight fingerprints, so a figure names the model it measured."""
    if not checkpoint:
        return None
    meta = json.loads((Path(checkpoint) / "meta.json").read_text())
    return {"transform": meta.get("fingerprint"), "context": (meta.get("context") or {}).get("fingerprint"),
            "train": meta.get("train")}


if __name__ == "__main__":
    main()
