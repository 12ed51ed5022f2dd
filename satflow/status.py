"""Progress from what the stages left on disk (`satflow status`): complete, pending, where it ran.

It reads only what the stages leave on disk, so it works while a run goes on, after it died, and
on another machine:

- a store (Zarr with `ingested`): time steps ingested / pending, their source files, finalised or not;
- an eval directory (`plan.json`): blocks with a chunk in the codec's compressed store (or, in an
  older directory, a container file) per codec / pending, finished or not (`metrics.json`), and
  from `manifest.json` the workers that ran its tasks;
- a pipeline output directory (`run-manifest.json` of jobs/pipeline.py): each stage's status, time
  and the workers and SLURM jobs that ran it, the worker jobs of the run (still queued or not),
  then the store and the eval directory inside it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

RUN_MANIFEST = "run-manifest.json"
SLURM_LEDGER = "slurm-jobs.json"


def status_of(path: str | Path) -> dict:
    """The status of whatever `path` holds (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or directory")
    if (path / RUN_MANIFEST).is_file():
        return run_status_of(path)
    if (path / "plan.json").is_file():
        return eval_status(path)
    if (path / "zarr.json").is_file():
        return store_status(path)
    raise ValueError(f"{path}: neither a store (zarr.json), an eval directory (plan.json) nor a pipeline "
                     f"output directory ({RUN_MANIFEST})")


def store_status(path: Path) -> dict:
    import numpy as np

    from satflow.store import open_group

    group = open_group(path)
    if "ingested" not in group:
        raise ValueError(f"{path}: a Zarr group without `ingested`: not a satflow store")
    ingested = np.asarray(group["ingested"][:]).astype(bool)
    sources = [str(s) for s in np.asarray(group["source_file"][:]).tolist()] if "source_file" in group else []
    pending = [int(t) for t in np.flatnonzero(~ingested)]
    return {
        "kind": "store", "path": str(path), "steps": int(ingested.size), "ingested": int(ingested.sum()),
        "pending_steps": pending, "pending_files": [sources[t] for t in pending if t < len(sources) and sources[t]],
        "finalised": "satflow_fingerprint" in group.attrs, "complete": bool(ingested.all()) and
        "satflow_fingerprint" in group.attrs,
    }


def eval_status(path: Path) -> dict:
    plan = json.loads((path / "plan.json").read_text())
    blocks = [f"t{b['t']}-y{b['y0']}-x{b['x0']}-h{b['y1'] - b['y0']}-w{b['x1'] - b['x0']}" for b in plan["blocks"]]
    manifest = _read_json(path / "manifest.json") or {}
    metrics = _read_json(path / "metrics.json")
    folders = _codec_folders(path, plan["codecs"], metrics)
    codecs = []
    for spec, folder in zip(plan["codecs"], folders):
        done = _blocks_done(path / folder / "compressed.zarr", plan, blocks) if folder else 0
        codecs.append({"codec": spec, "dir": folder, "blocks_done": done, "blocks_pending": len(blocks) - done})
    tasks = manifest.get("tasks", [])
    per_worker = Counter(t.get("worker", "?") for t in tasks)
    finished = metrics is not None and all(c["blocks_pending"] == 0 for c in codecs)
    return {
        "kind": "eval", "path": str(path), "store": plan.get("store"), "blocks": len(blocks), "codecs": codecs,
        "metrics_written": metrics is not None, "complete": finished,
        "workers": dict(sorted(per_worker.items())), "cluster": manifest.get("cluster", {}).get("kind"),
        "seconds": manifest.get("seconds", {}).get("total"),
    }


def _blocks_done(compressed: Path, plan: dict, keys: list[str]) -> int:
    """Blocks whose X chunk exists (one file per chunk, named by zarr's default chunk key encoding);
    an older directory's container files count the same way."""
    legacy = compressed / "containers"
    if legacy.is_dir():
        present = {p.stem for p in legacy.glob("*.sfc")}
        return sum(key in present for key in keys)
    chunks = compressed / "X" / "c"
    if not chunks.is_dir():
        return 0
    t0 = int(plan["time_range"][0])
    height, width = (min(n, size) for n, size in zip(plan["reconstruction_chunks"], plan["shape"][2:]))
    done = 0
    for position, b in enumerate(plan["blocks"]):
        coords = (position, 0, 0, 0) if plan["mode"] == "index" else (b["t"] - t0, 0, b["y0"] // height,
                                                                           b["x0"] // width)
        done += chunks.joinpath(*map(str, coords)).is_file()
    return done


def _codec_folders(path: Path, specs: list[str], metrics: list | None) -> list[str | None]:
    """Each spec's output folder: from metrics.json when written, else the folder whose store names the spec."""
    if metrics:
        by_spec = {entry["codec"]: entry["dir"] for entry in metrics}
        if all(spec in by_spec for spec in specs):
            return [by_spec[spec] for spec in specs]
    found: dict[str, str] = {}
    for attrs_file in path.glob("*/compressed.zarr/zarr.json"):
        text = attrs_file.read_text()
        for spec in specs:
            if json.dumps(spec) in text and spec not in found:
                found[spec] = attrs_file.parent.parent.name
    return [found.get(spec) or _folder_guess(spec, path) for spec in specs]


def _folder_guess(spec: str, path: Path) -> str | None:
    guess = re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", spec.replace(":", "-"))
    return guess if (path / guess).is_dir() else None


def run_status_of(path: Path) -> dict:
    manifest = json.loads((path / RUN_MANIFEST).read_text())
    requested = manifest.get("stages_requested", [])
    stages = manifest.get("stages", {})
    report: dict = {"kind": "run", "path": str(path), "run": manifest.get("run"), "status": manifest.get("status",
                    "running (or killed)"), "stages": [], "parts": []}
    for name in ("ingest", "index", "eval", "report"):
        entry = stages.get(name)
        if entry is None and name not in requested:
            continue
        entry = entry or {"status": "pending"}
        jobs = sorted({w.get("slurm_job_id") for w in entry.get("workers", {}).values() if w.get("slurm_job_id")},
                      key=lambda j: int(j) if str(j).isdigit() else 0)
        report["stages"].append({"stage": name, "status": entry.get("status", "pending"),
                                 "seconds": entry.get("seconds"), "workers": len(entry.get("workers", {})),
                                 "slurm_jobs": jobs, "run": entry.get("run")})
    ledger = _read_json(path / SLURM_LEDGER)
    if ledger:
        from satflow.runtime.slurm import live_jobs

        ids = [job["id"] for job in ledger.get("jobs", [])]
        live = live_jobs()
        report["slurm"] = {"run": ledger.get("run"), "jobs": ids,
                           "cancelled": [c["id"] for c in ledger.get("cancelled", [])],
                           "still_queued_or_running": [j for j in ids if j in live]}
    for sub in ("store.zarr", "eval"):
        with_status = path / sub
        if with_status.exists():
            try:
                report["parts"].append(status_of(with_status))
            except ValueError as err:
                report["parts"].append({"kind": "unknown", "path": str(with_status), "error": str(err)})
    report["complete"] = bool(requested) and all(stages.get(s, {}).get("status") == "done" for s in requested)
    report["failed"] = any(s["status"] in ("failed", "terminated") for s in report["stages"])
    return report


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def format_status(report: dict, indent: str = "") -> str:
    kind = report["kind"]
    lines: list[str] = []
    if kind == "store":
        lines.append(f"{indent}store {report['path']}: {report['ingested']} of {report['steps']} time steps ingested"
                     f"{', finalised' if report['finalised'] else ', not finalised (statistics pending)'}")
        if report["pending_steps"]:
            steps = ", ".join(map(str, report["pending_steps"][:20])) + (" ..." if len(report["pending_steps"]) > 20
                                                                          else "")
            lines.append(f"{indent}  pending steps: {steps}")
    elif kind == "eval":
        state = "complete" if report["complete"] else "metrics pending" if not report["metrics_written"] else "partial"
        lines.append(f"{indent}eval {report['path']}: {report['blocks']} block(s) per codec, {state}")
        width = max(len(c["codec"]) for c in report["codecs"])
        for codec in report["codecs"]:
            lines.append(f"{indent}  {codec['codec']:<{width}}  {codec['blocks_done']:>5} done  "
                         f"{codec['blocks_pending']:>5} pending")
        if report["workers"]:
            lines.append(f"{indent}  ran on {len(report['workers'])} worker(s) ({report['cluster'] or '?'}):")
            lines += [f"{indent}    {worker}: {count} task(s)" for worker, count in report["workers"].items()]
    elif kind == "run":
        lines.append(f"run {report['run']} in {report['path']}: {report['status']}")
        for stage in report["stages"]:
            where = f", {stage['workers']} worker(s)" if stage["workers"] else ""
            where += f", SLURM job(s) {' '.join(stage['slurm_jobs'])}" if stage["slurm_jobs"] else ""
            seconds = f" in {stage['seconds']:.1f} s" if stage.get("seconds") is not None else ""
            lines.append(f"  {stage['stage']:<7} {stage['status']}{seconds}{where}")
        if "slurm" in report:
            slurm = report["slurm"]
            lines.append(f"  SLURM worker jobs of run {slurm['run']}: {' '.join(slurm['jobs']) or 'none'}; "
                         f"still queued or running: {' '.join(slurm['still_queued_or_running']) or 'none'}")
        for part in report["parts"]:
            lines.append(format_status(part, indent="  ") if part["kind"] != "unknown"
                         else f"  {part['path']}: {part['error']}")
    return "\n".join(lines)
