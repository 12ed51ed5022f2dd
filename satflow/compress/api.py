"""`satflow compress`: the input store's facts, a pure plan of regions, one executor call, the summary.

    prepare_compress(store, out, config)   every argument checked, nothing written, no cluster
    run_compress(store, out, config, client=...)   template (or resume), the tasks, finalise
    compress_job(store, out, config, cluster, choice=...)   the command: check, then open a cluster, run

The compressed store is a satflow store (`xr.open_zarr(out)` is the reconstruction, decoded lazily) whose
statistics are the input's (computed from the original values); its `satflow_compress` attribute records
the codec, the source store and its fingerprint, and the summary (`summarize`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

from satflow.codecs.spec import CodecSpec, CodecSpecError
from satflow.compress.options import CompressConfig
from satflow.compress.output import create_compressed_store, finish_compressed_store, remove_output
from satflow.compress.plan import DIMS, CompressError, CompressPlan, plan_compress
from satflow.compress.scan import scan_compress
from satflow.compress.tasks import CompressPartial, RegionTask, combine_partials, compress_region
from satflow.runtime.executors import as_executor
from satflow.store import remove_partial_writes


@dataclass
class CompressResult:
    plan: CompressPlan
    summary: dict

    def describe(self) -> str:
        """Bits per value and the errors per feature, then the totals."""
        s, per = self.summary, self.summary["per_feature"]
        width = max(len("feature"), *(len(f) for f in s["features"]))
        lines = [f"{'feature':<{width}} {'bits/value':>10} {'RMSE':>10} {'max |err|':>10}"]
        for i, feature in enumerate(s["features"]):
            lines.append(f"{feature:<{width}} {_number(per['bits_per_value'][i]):>10} {_number(per['rmse'][i]):>10} "
                         f"{_number(per['max_abs_error'][i]):>10}")
        lines.append(f"compressed {s['store']} with {s['codec']}: {s['bits_per_value']:.3f} bits/value "
                     f"(ratio {s['compression_ratio']:.1f} vs float32), {s['regions_coded']} region(s) coded, "
                     f"{s['regions_done_before']} done before")
        return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def prepare_compress(store: str | Path, out: str | Path, config: CompressConfig, *,
                     overwrite: bool = False) -> CompressPlan:
    """The plan, every argument checked first: a missing or unfinished store, no or a bad codec spec, a missing
    checkpoint, --out being the input, or an existing --out that is not this compression (without
    --overwrite) raises ValueError naming it. Nothing is written and no codec is built."""
    facts = scan_compress(store, out)
    if Path(facts.out) == Path(facts.store) or Path(facts.store) in Path(facts.out).parents:
        raise CompressError(f"--out {out}: is (inside) the input store {store}; choose another --out")
    if overwrite and facts.existing is not None:
        facts = dataclasses.replace(facts, existing=None)  # planned as new; run_compress deletes it
    plan = plan_compress(facts, config)
    _check_checkpoints(plan.codec)
    return plan


def _check_checkpoints(codec: str) -> None:
    missing = [path for path in CodecSpec.parse(codec).checkpoint_paths() if not Path(path).exists()]
    if missing:
        raise CodecSpecError(f"codec spec {codec!r}: checkpoint {missing[0]} does not exist; "
                             "give a `satflow train` output (checkpoint=DIR in the spec)")


def run_compress(store: str | Path, out: str | Path, config: CompressConfig, *, client=None,
                 overwrite: bool = False, progress: bool = True) -> CompressResult:
    """Compress `store` into `out` (resuming an interrupted run of the same compression); the summary."""
    plan = prepare_compress(store, out, config, overwrite=overwrite)
    if plan.mode == "create":
        if Path(plan.out).exists():
            remove_output(plan.out)
        create_compressed_store(plan)
    else:
        remove_partial_writes(plan.out)  # a killed run's half-written chunk files
    tic = time.perf_counter()
    tasks = [RegionTask(region, True) for region in plan.pending] + [RegionTask(region, False) for region in plan.done]
    executor = as_executor(client)
    executor.prepare_workers(CodecSpec.parse(plan.codec).worker_plugins())
    partial = executor.map_reduce(compress_region, tasks, plan.store, plan.out, combine=combine_partials,
                                  name="compress-region", retries=config.retries, progress=progress)
    summary = summarize(plan, partial, seconds=time.perf_counter() - tic)
    return CompressResult(plan, finish_compressed_store(plan, summary))


def summarize(plan: CompressPlan, partial: CompressPartial, *, seconds: float) -> dict:
    """The summary: per feature bits per value (from X's chunk bytes on disk; features sharing a chunk share its
    rate), RMSE and worst absolute error of the reconstruction over valid points; totals for X and M."""
    metrics = partial.errors.finalize(plan.features)
    cells_per_feature = plan.shape[0] * plan.shape[2] * plan.shape[3]
    per = metrics["per_feature"]
    return {
        "store": plan.out, "source": plan.store, "source_fingerprint": plan.fingerprint, "codec": plan.codec,
        "chunks": dict(zip(DIMS, plan.chunks)), "features": list(plan.features),
        "regions_coded": partial.coded, "regions_done_before": len(plan.pending) + len(plan.done) - partial.coded,
        "n_cells": metrics["n_cells"], "n_valid": metrics["n_valid"],
        "x_bytes": metrics["n_bytes"], "m_bytes": partial.mask_bytes,
        "bits_per_value": metrics["bits_per_value"], "bits_per_valid_value": _finite(metrics["bits_per_valid_value"]),
        "compression_ratio": metrics["compression_ratio"],
        "per_feature": {
            "count": per["count"],
            "bits_per_value": [_finite(8.0 * b / cells_per_feature) for b in partial.feature_bytes],
            "rmse": [_finite(v) for v in per["rmse"]],
            "max_abs_error": [_finite(v) for v in per["max_abs_error"]],
            "mae": [_finite(v) for v in per["mae"]],
            "bias": [_finite(v) for v in per["bias"]],
        },
        "seconds": round(seconds, 3),
    }


def _finite(value: float) -> float | None:
    """JSON (and Zarr attributes) hold no NaN: a feature without valid points has no error, None."""
    value = float(value)
    return value if math.isfinite(value) else None


def compress_job(store: str | Path, out: str | Path, config: CompressConfig, cluster, *, choice: str = "auto",
                 overwrite: bool = False, progress: bool = True, on_plan=None) -> CompressResult:
    """`satflow compress`: check everything (`prepare_compress`), then open a cluster by the policy of
    `satflow.runtime.cluster` (auto: by the number of region tasks, at most one per 16 MiB), then `run_compress`."""
    from satflow.runtime.cluster import client_for, data_tasks

    plan = prepare_compress(store, out, config, overwrite=overwrite)
    if on_plan is not None:
        on_plan(plan)
    with client_for(choice, cluster, data_tasks(len(plan.pending) + len(plan.done), plan.n_bytes)) as client:
        return run_compress(store, out, config, client=client, overwrite=overwrite, progress=progress)


__all__ = ["CompressError", "CompressResult", "compress_job", "prepare_compress", "run_compress", "summarize"]
