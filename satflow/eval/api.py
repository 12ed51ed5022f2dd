"""`run_eval`: scan the store's facts, plan, one executor call for the coding tasks (which also
compute the whole-field metrics from the values they hold), outputs.

    DIR/metrics.json        one entry per codec (see satflow.eval.reduce)
    DIR/metrics.parquet     codec x feature and codec x feature x time step rows
    DIR/manifest.json       config, versions, cluster, where and how long each task ran
    DIR/plan.json           the plan that ran
    DIR/<codec>/compressed.zarr     a Zarr store that decodes to the reconstruction (satflow.eval.stores)
    DIR/<codec>/reconstruction.zarr only with eval.reconstruction

Re-running the same command resumes: blocks whose chunk exists are decoded, not encoded.
`decode_compressed` rebuilds a reconstruction from a compressed store alone, with the same tasks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from satflow.codecs.spec import CodecSpec, CodecSpecError
from satflow.eval.options import EvalConfig
from satflow.eval.plan import Block, EvalFacts, EvalPlan, plan_eval, task_batches, whole_fields
from satflow.eval.reduce import codec_entry, metrics_frame
from satflow.eval.scan import scan_eval
from satflow.eval.stores import (check_compressed_store, chunk_coords, create_compressed_store, create_reconstruction,
                                 finish_reconstruction, read_compressed_store, write_json)
from satflow.eval.tasks import BatchItem, EvalContext, Partials, code_batch, combine_partials, moments_by_step
from satflow.runtime.executors import Executor, as_executor
from satflow.store import StoreLayout, remove_partial_writes
from satflow.version import __version__

log = logging.getLogger(__name__)

RECONSTRUCTION_COMPRESSION_LEVEL = 1  # the reconstruction is an output to look at, not a size to measure


@dataclass
class EvalResult:
    out: Path
    plan: EvalPlan
    entries: list[dict]
    manifest: dict

    def describe(self) -> str:
        """A short table: bits per value, ratio and the worst feature's errors per codec."""
        width = max(len("codec"), *(len(e["codec"]) for e in self.entries))
        lines = [f"{'codec':<{width}} {'bits/value':>10} {'ratio':>7} {'max RMSE':>9} {'max |err|':>9} {'viol.':>6}"]
        for entry in self.entries:
            per_feature = entry["per_feature"]
            violations = [v for v in per_feature["violations"] if v is not None]
            lines.append(
                f"{entry['codec']:<{width}} {entry['bits_per_value']:>10.3f} {entry['compression_ratio']:>7.1f} "
                f"{np.nanmax(per_feature['rmse']):>9.4g} {np.nanmax(per_feature['max_abs_error']):>9.4g} "
                f"{sum(violations) if violations else '-':>6}")
        return "\n".join(lines)


def run_eval(store: str | Path, out: str | Path, config: EvalConfig | None = None, *, client=None,
             overwrite: bool = False, progress: bool = True, full_config: dict | None = None) -> EvalResult:
    """Evaluate every codec spec of `config` over `store`; write DIR's outputs; resumable.

    `full_config`: the whole satflow configuration (every section, JSON) the run was started with,
    recorded as the manifest's `config`.
    """
    config = config or EvalConfig()
    started, clock = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    executor = as_executor(client)
    facts, plan = prepare_eval(store, config)
    seconds = {"plan": time.perf_counter() - clock}  # the facts scan and the pure plan
    outputs = _prepare_outputs(plan, facts, Path(out), overwrite, config.reconstruction)
    seconds["outputs_created"] = time.perf_counter() - clock - seconds["plan"]  # the stores the tasks fill
    with _performance_report(config.performance_report, executor):
        partials = _run_tasks(plan, facts, config, outputs, executor, progress, seconds)
    tic = time.perf_counter()
    entries = _write_metrics(plan, config, outputs, partials)
    seconds["outputs"] = time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - clock
    manifest = _manifest(plan, config, executor, partials, started, seconds, full_config)
    write_json(outputs.root / "manifest.json", manifest)
    return EvalResult(outputs.root, plan, entries, manifest)


def prepare_eval(store: str | Path, config: EvalConfig) -> tuple[EvalFacts, EvalPlan]:
    """The store's facts (its one metadata read) and the plan over them, every argument checked.

    What a caller runs before it starts a cluster (or for `--dry-run`): a missing store, a bad
    time range, index or codec spec, or a missing checkpoint raises ValueError naming it; nothing
    is written and no codec is built.
    """
    facts = scan_eval(store, config)
    plan = plan_eval(facts, config)
    _check_checkpoints(plan)
    return facts, plan


def _check_checkpoints(plan: EvalPlan) -> None:
    """A checkpoint that is not there fails now, naming its spec, not once in every task."""
    for spec in plan.codecs:
        missing = [path for path in spec.checkpoint_paths() if not Path(path).exists()]
        if missing:
            raise CodecSpecError(f"codec spec {str(spec)!r}: checkpoint {missing[0]} does not exist; "
                                 "give a `satflow train` output (--checkpoint DIR or checkpoint=DIR in the spec)")


@dataclass(frozen=True)
class _Outputs:
    root: Path
    folders: list[str]  # per codec, relative to root
    layout: StoreLayout  # of the reconstruction stores
    source_files: list[str]
    with_reconstruction: bool

    def compressed(self, codec: int) -> Path:
        return self.root / self.folders[codec] / "compressed.zarr"

    def reconstruction(self, codec: int) -> Path | None:
        return self.root / self.folders[codec] / "reconstruction.zarr" if self.with_reconstruction else None


def _prepare_outputs(plan: EvalPlan, facts: EvalFacts, root: Path, overwrite: bool, with_reconstruction: bool) -> _Outputs:
    """The output folder with the plan and, per codec, its compressed store (new, or checked for
    resuming) and, when asked for, a fresh reconstruction store."""
    if overwrite and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "plan.json", plan.to_dict())
    layout, source_files = _reconstruction_layout(plan, facts)
    folders = [spec.folder for spec in plan.codecs]
    for spec, folder in zip(plan.codecs, folders):
        _prepare_codec_dir(root / folder, plan, spec, facts, layout if with_reconstruction else None)
    return _Outputs(root, folders, layout, source_files, with_reconstruction)


def _run_tasks(plan: EvalPlan, facts: EvalFacts, config: EvalConfig, outputs: _Outputs, executor: Executor,
               progress: bool, seconds: dict) -> Partials:
    """The coding tasks: each codes whole fields and measures them (errors and field metrics) at once."""
    context = _context(plan, facts, config.acceptance.rel_threshold)
    tic = time.perf_counter()
    executor.prepare_workers(set().union(*(spec.worker_plugins() for spec in plan.codecs)))  # kernels, once
    items, resources = _coding_items(plan, config, outputs, executor)
    partials = executor.map_reduce(code_batch, items, context, combine=combine_partials, name="eval-code",
                                   retries=config.retries, resources=resources, progress=progress)
    seconds["code"] = time.perf_counter() - tic
    return partials


def _write_metrics(plan: EvalPlan, config: EvalConfig, outputs: _Outputs, partials: Partials) -> list[dict]:
    """Finish the reconstruction stores (if any); write metrics.json and metrics.parquet; return the entries."""
    for codec in range(len(plan.codecs)):
        if outputs.with_reconstruction:
            finish_reconstruction(outputs.reconstruction(codec),
                                  moments_by_step(partials, codec, plan.time_range[0]), outputs.source_files)
    entries = [codec_entry(plan, config, partials, codec, folder) for codec, folder in enumerate(outputs.folders)]
    write_json(outputs.root / "metrics.json", entries)
    table = metrics_frame(plan, entries, partials, outputs.layout.times)
    table.to_parquet(outputs.root / "metrics.parquet", index=False)
    return entries


def _reconstruction_layout(plan: EvalPlan, facts: EvalFacts) -> tuple[StoreLayout, list[str]]:
    """The reconstruction's layout (climatologies stay in their calendar) and the evaluated steps' source files."""
    t0, t1 = plan.time_range
    layout = StoreLayout(
        times=facts.times[t0:t1], features=plan.features, lat=facts.lat, lon=facts.lon,
        chunks={"time": 1, "feature": -1, "lat": plan.reconstruction_chunks[0], "lon": plan.reconstruction_chunks[1]},
        compression_level=RECONSTRUCTION_COMPRESSION_LEVEL, units=facts.units,
    )
    return layout, list(facts.source_files[t0:t1])


def _prepare_codec_dir(folder: Path, plan: EvalPlan, spec: CodecSpec, facts: EvalFacts,
                       reconstruction_layout: StoreLayout | None) -> None:
    """A new codec folder gets its compressed store; an existing one is checked and resumed."""
    compressed, reconstruction = folder / "compressed.zarr", folder / "reconstruction.zarr"
    if (compressed / "zarr.json").exists():
        check_compressed_store(compressed, plan, str(spec))
        remove_partial_writes(compressed)  # a killed run's half-written chunk files
    else:
        folder.mkdir(parents=True, exist_ok=True)
        create_compressed_store(compressed, plan, spec, facts)
    if reconstruction_layout is not None:
        # Every task rewrites all its regions, so a fresh template is always safe (and the only safe
        # choice when an interrupted run left a half-finalised one).
        create_reconstruction(reconstruction, reconstruction_layout, {
            "satflow_eval_codec": str(spec), "source_store": plan.store, "source_fingerprint": plan.fingerprint})


def _context(plan: EvalPlan, facts: EvalFacts, rel_threshold: float) -> EvalContext:
    """Per-feature histogram units (the store's std) and the source files' bytes per cell per step."""
    std = np.asarray(facts.std, dtype=np.float64)
    hist_scale = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    files = list(facts.source_files)
    steps_per_file = {f: files.count(f) for f in set(files)}
    cells_per_step = int(np.prod(plan.shape[1:]))
    per_cell = []
    for f in files[plan.time_range[0]:plan.time_range[1]]:
        size = facts.source_sizes.get(f, 0)
        per_cell.append(size / (steps_per_file[f] * cells_per_step) if size else 0.0)
    return EvalContext(plan.store, plan.time_range[0], tuple(hist_scale.tolist()), tuple(per_cell),
                       rel_threshold=rel_threshold, field_metrics=plan.field_metrics)


def _gpu_advertised(executor: Executor) -> bool:
    return any("GPU" in r for r in executor.describe().get("resources", {}).values())


def _coding_items(plan: EvalPlan, config: EvalConfig, outputs: _Outputs,
                  executor: Executor) -> tuple[list[BatchItem], list[dict | None]]:
    """One item per task; learned codecs ask for a GPU worker (and put their network on it) per `eval.gpu`."""
    use_gpu = config.gpu == "always" or (config.gpu == "auto" and _gpu_advertised(executor))
    items, resources = [], []
    for task in plan.tasks:
        spec = plan.codecs[task.codec]
        on_gpu = use_gpu and spec.is_learned
        reconstruction = outputs.reconstruction(task.codec)
        items.append(_item(task.codec, spec.with_device("auto") if on_gpu else spec, plan.mode, plan.time_range[0],
                           plan.reconstruction_chunks, plan.blocks, task.blocks,
                           tuple(plan.regions[i] for i in task.regions), outputs.compressed(task.codec),
                           reconstruction))
        resources.append({"GPU": 1} if on_gpu else None)
    return items, resources


def _item(codec: int, spec: CodecSpec, mode: str, t0: int, chunk_yx: tuple[int, int], blocks: list[Block],
          positions: tuple[int, ...], regions: tuple[Block, ...], compressed: Path,
          reconstruction: Path | None) -> BatchItem:
    return BatchItem(codec, spec, tuple(blocks[i] for i in positions),
                     tuple(chunk_coords(mode, t0, chunk_yx, blocks[i], i) for i in positions), regions,
                     str(compressed), None if reconstruction is None else str(reconstruction))


@contextlib.contextmanager
def _performance_report(path: str | None, executor: Executor):
    """A Dask performance report (HTML) of the run, when asked for and a cluster runs it."""
    if not path or executor.describe()["kind"] != "dask":
        if path:
            log.warning("no Dask cluster: no performance report is written to %s", path)
        yield
        return
    from distributed import performance_report

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with performance_report(filename=str(path)):
        yield


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("numpy", "dask", "distributed", "zarr", "xarray", "numcodecs", "pysz", "hdf5plugin",
                    "constriction", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return {"satflow": __version__, **found}


def _manifest(plan: EvalPlan, config: EvalConfig, executor: Executor, partials: Partials,
              started: dt.datetime, seconds: dict, full_config: dict | None) -> dict:
    specs = [str(c) for c in plan.codecs]
    tasks = [{**record, "codec": specs[record["codec"]]} for record in partials.records]
    return {
        "satflow_version": __version__, "store": plan.store, "store_fingerprint": plan.fingerprint,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": seconds, "cluster": executor.describe(), "versions": _versions(),
        "eval_config": config.model_dump(mode="json"), "config": full_config,
        "workers": sorted({t["worker"] for t in tasks}), "tasks": tasks,
    }


def decode_compressed(compressed: str | Path, out: str | Path, *, checkpoint: str | None = None, client=None,
                      overwrite: bool = False, progress: bool = False) -> Path:
    """Rebuild the reconstruction store from `compressed` alone, bit for bit as the eval wrote it.

    A learned codec's checkpoint defaults to the one the eval recorded; the stream's weights
    fingerprint is checked either way.
    """
    attrs, blocks, layout = read_compressed_store(compressed)
    checkpoint = checkpoint or attrs.get("checkpoint")
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out}: exists; choose another --out or pass --overwrite")
        shutil.rmtree(out)
    create_reconstruction(out, layout, {"satflow_eval_codec": attrs["codec"], "source_store": attrs["source_store"],
                                        "source_fingerprint": attrs["source_fingerprint"]})
    t0 = int(attrs["time_range"][0])
    spec = CodecSpec.parse(attrs["codec"])
    regions = _decode_regions(attrs, blocks, layout)
    chunk_yx = tuple(int(n) for n in attrs["reconstruction_chunks"])
    items = [_item(0, spec, attrs["mode"], t0, chunk_yx, blocks, task.blocks,
                   tuple(regions[i] for i in task.regions), Path(compressed), out)
             for task in _decode_tasks(attrs, blocks, regions)]
    context = EvalContext(None, t0, decode_context=(("checkpoint", str(checkpoint)),) if checkpoint else ())
    partials = as_executor(client).map_reduce(code_batch, items, context, combine=combine_partials,
                                              name="decode", retries=2, progress=progress)
    finish_reconstruction(out, moments_by_step(partials, 0, t0), list(attrs["source_files"]))
    return out



def _decode_regions(attrs: dict, blocks: list[Block], layout: StoreLayout) -> list[Block]:
    if attrs["mode"] == "index":
        return blocks
    return whole_fields(tuple(int(t) for t in attrs["time_range"]), (len(layout.lat), len(layout.lon)))


def _decode_tasks(attrs: dict, blocks: list[Block], regions: list[Block]):
    return task_batches(blocks, regions, 1, int(attrs["batch_size"]), group_by_time=attrs["mode"] == "index")


def eval_job(store: str | Path, out: str | Path, config: EvalConfig, cluster, *, choice: str = "auto",
             overwrite: bool = False, progress: bool = True, full_config: dict | None = None) -> EvalResult:
    """`satflow eval`: check the store and every codec spec, then open a cluster by the policy, then `run_eval`.

    `cluster` is the `cluster:` section and `choice` its `--cluster` flag (auto: by the plan's
    coded regions, `EvalPlan.n_coded_regions`, at most one per 16 MiB coded; see `satflow.runtime.cluster`). A missing store, a
    bad time range or an unknown codec is reported before any cluster starts.
    """
    from satflow.runtime.cluster import client_for, data_tasks

    _, plan = prepare_eval(store, config)  # store, time range, index, specs, checkpoints: errors name them
    # Not overlapped with creating the output stores (as ingest overlaps its scan): measured on 2 cores
    # (24 AMSU fields, alternated), 27.9-29.2 s against 22.2-30.1 s, as creating the stores beside the
    # starting workers took 2.4-3.0 s instead of 0.5-0.8 s.
    with client_for(choice, cluster, data_tasks(plan.n_coded_regions, plan.n_coded_bytes), announce=True) as client:
        return run_eval(store, out, config, client=client, overwrite=overwrite, progress=progress,
                        full_config=full_config)


def decode_compressed_job(compressed: str | Path, out: str | Path, cluster, *, choice: str = "auto",
                          checkpoint: str | None = None, overwrite: bool = False, progress: bool = False) -> Path:
    """`satflow decode DIR/compressed.zarr`: check both paths, open a cluster by the policy, `decode_compressed`.

    auto counts the decode tasks (see `satflow.runtime.cluster`).
    """
    from satflow.runtime.cluster import client_for

    attrs, blocks, layout = read_compressed_store(compressed)  # a wrong path is named before any cluster starts
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out}: exists; choose another --out or pass --overwrite")
    n_tasks = len(_decode_tasks(attrs, blocks, _decode_regions(attrs, blocks, layout)))
    with client_for(choice, cluster, n_tasks, announce=True) as client:
        return decode_compressed(compressed, out, checkpoint=checkpoint, client=client, overwrite=overwrite,
                                 progress=progress)
