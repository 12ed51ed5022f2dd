"""The whole pipeline, one function: sample? -> ingest -> inspect? -> index -> eval -> report.

`satflow demo` and `jobs/pipeline.py` both run `run_pipeline`; they differ only in their stages,
paths and hooks. A hook is a context manager factory called once per stage: the code before its
`yield` runs when the stage starts, the code after when it is done (or failed), and the
`StageRecord` it receives is filled in by the pipeline (result, summary) so that the hook can
print, log, time or write a run manifest. The cluster is opened (through the `cluster` factory)
for the stages that run tasks on one (ingest, index, eval) and closed after the last of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGES = ("sample", "ingest", "inspect", "index", "eval", "report")
CLUSTER_STAGES = ("ingest", "index", "eval")


@dataclass(frozen=True)
class PipelinePaths:
    """Where each stage writes: sample files, the store, the patch index, the eval directory."""

    raw: Path
    store: Path
    index: Path
    eval: Path


@dataclass
class StageRecord:
    """One stage as it ran: its result object and a short text for logs and manifests."""

    name: str
    result: Any = None
    summary: str = ""
    extra: dict = field(default_factory=dict)  # for the hook's own bookkeeping


def _no_hook(record: StageRecord):
    return contextlib.nullcontext()


def run_pipeline(config, paths: PipelinePaths, stages: Sequence[str], *, inputs: Sequence[str] = (),
                 cluster: Callable[[], contextlib.AbstractContextManager] | None = None,
                 hook: Callable[[StageRecord], contextlib.AbstractContextManager] = _no_hook,
                 overwrite: bool = False, progress: Sequence[str] = ()) -> dict[str, StageRecord]:
    """Run `stages` (in pipeline order) with the sections of `config`; returns a record per stage.

    `inputs` are the NetCDF files of the ingest (the sample stage supplies its own); `cluster()`
    opens a client (None: every stage runs in this process); `overwrite` starts the store and
    the eval afresh instead of resuming them; `progress` names the stages that show progress bars.
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown pipeline stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    ordered = [s for s in STAGES if s in stages]
    last_on_cluster = max((ordered.index(s) for s in ordered if s in CLUSTER_STAGES), default=-1)
    state = {"inputs": list(inputs), "client": None}
    records: dict[str, StageRecord] = {}
    with contextlib.ExitStack() as open_cluster:
        for position, stage in enumerate(ordered):
            if stage in CLUSTER_STAGES and cluster is not None and state["client"] is None:
                state["client"] = open_cluster.enter_context(cluster())
            record = records[stage] = StageRecord(stage)
            with hook(record):
                record.result, record.summary = _STAGE_RUNNERS[stage](config, paths, state, overwrite,
                                                                     stage in progress)
            if position == last_on_cluster:
                open_cluster.close()
                state["client"] = None
    return records


def _sample(config, paths, state, overwrite, progress):
    from satflow.sources.samples import write_sample

    files = write_sample(config.sample, paths.raw)
    state["inputs"] = [str(paths.raw)]
    return files, f"wrote {len(files)} sample files to {paths.raw}"


def _ingest(config, paths, state, overwrite, progress):
    from satflow.ingest import run_ingest

    if not state["inputs"]:
        raise ValueError("ingest needs inputs: give files or globs, or set ingest.inputs in the config")
    report = run_ingest(state["inputs"], paths.store, config.ingest, client=state["client"], overwrite=overwrite,
                        progress=progress)
    return report, report.describe()


def _inspect(config, paths, state, overwrite, progress):
    from satflow.summary import format_summary, summarize_store

    summary = summarize_store(paths.store)
    return summary, format_summary(summary)


def _index(config, paths, state, overwrite, progress):
    from satflow.index import build_index

    result = build_index(paths.store, paths.index, config.index, client=state["client"])
    return result, result.describe()


def _eval(config, paths, state, overwrite, progress):
    from satflow.eval.api import run_eval

    result = run_eval(paths.store, paths.eval, config.eval, client=state["client"], overwrite=overwrite,
                      progress=progress, full_config=config.model_dump(mode="json"))
    resumed = sum(e.get("blocks_resumed", 0) for e in result.entries)
    encoded = sum(e.get("blocks_encoded", 0) for e in result.entries)
    return result, f"eval: {encoded} block(s) encoded, {resumed} resumed\n{result.describe()}"


def _report(config, paths, state, overwrite, progress):
    from satflow.eval.report import write_report

    written = write_report(paths.eval)
    return written, f"report: {written['html']}"


_STAGE_RUNNERS = {"sample": _sample, "ingest": _ingest, "inspect": _inspect, "index": _index, "eval": _eval,
                  "report": _report}

# --- satflow demo ------------------------------------------------------------------------------
# Settings across codec families, so the rate-distortion plots have lines, not points. The learned
# ones use the shipped AMSU checkpoint: its transform codec (vaeformer) and the context network of
# errorbound(context="learned").
DEMO_CODECS = (
    "sz3:tol=0.25", "sz3:tol=0.5", "sz3:tol=1.0",
    "zfp:tol=0.5",
    "bitround:keepbits=6", "bitround:keepbits=8",
    "errorbound:inner=constant,eps=0.5",
    "errorbound:inner=constant,eps=0.5,context=learned", "errorbound:inner=constant,eps=1.0,context=learned",
    "vaeformer:qstep=0.5", "vaeformer:qstep=1",
)
DEMO_VARIABLE = "tmbrs"  # the 15 AMSU-A channels the shipped checkpoint was trained on
DEMO_STAGES = ("sample", "ingest", "inspect", "index", "eval", "report")


def demo_paths(out: Path) -> PipelinePaths:
    return PipelinePaths(raw=out / "raw", store=out / "amsua.zarr", index=out / "patches.parquet", eval=out / "eval")


def demo_config(config, *, steps: int | None = None, resolution: float | None = None, patch_size: int = 16,
                codecs: Sequence[str] | None = None):
    """The demo's sections on top of `config`: AMSU sample files, the 15 channels, square patches, the codec list."""
    from satflow.data import AMSUA_CHECKPOINT

    sample = config.sample.model_copy(update={k: v for k, v in {"steps": steps, "resolution": resolution}.items()
                                              if v is not None})
    ingest = config.ingest.model_copy(deep=True)
    ingest.source.variables = ingest.source.variables or [DEMO_VARIABLE]
    index = config.index.model_copy(update={"patch_size": patch_size, "stride": patch_size})
    evaluation = config.eval.model_copy(update={"codecs": list(codecs or DEMO_CODECS),
                                                "checkpoint": config.eval.checkpoint or str(AMSUA_CHECKPOINT)})
    return config.model_copy(update={"sample": sample, "ingest": ingest, "index": index, "eval": evaluation})
