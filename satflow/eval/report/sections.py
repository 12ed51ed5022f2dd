"""The report's sections, assembled from the evaluation: overview, metrics, figures and maps."""

from __future__ import annotations

import datetime as dt

from satflow.eval.report.document import Section
from satflow.version import __version__
from satflow.eval.report.figures import (codec_colours, feature_rmse_figure, histogram_figure, map_figure,
                                         rate_distortion_figure, spectra_figure)
from satflow.eval.report.load import Evaluation, time_labels
from satflow.eval.report.table import metrics_table


def map_section(evaluation: Evaluation, features: list[str], times: list[int]) -> Section:
    section = Section("Maps")
    try:
        labels = time_labels(evaluation)
        section.figures = [map_figure(evaluation, f, t, labels[t]) for t in times for f in features]
    except (FileNotFoundError, ValueError, KeyError) as err:  # a moved store must not cost the whole report
        section.text.append(f"Maps left out: {err}")
    return section


def overview_section(evaluation: Evaluation) -> Section:
    plan, manifest = evaluation.plan, evaluation.manifest
    t0, t1 = plan["time_range"]
    lines = [
        f"Store: {plan.get('store', '?')} (shape {plan.get('shape', '?')}); evaluated its time steps {t0} to "
        f"{t1 - 1} ({t1 - t0} steps, numbered from 0 in the maps), {plan.get('mode', 'cube')} mode, "
        f"blocks {plan.get('block_shape', '?')}.",
        f"Codecs: {', '.join(e['codec'] for e in evaluation.entries)}.",
        f"Evaluated {manifest.get('finished', '?')} with satflow {manifest.get('satflow_version', '?')}; "
        f"report written {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} by satflow {__version__}.",
    ]
    return Section("Overview", lines)


def metrics_section(entries: list[dict]) -> Section:
    notes = [
        "Bits per value count every cell (valid or not) from the bytes of the real containers; ratio is against "
        "float32, 'ratio vs source' against the source files. Errors are summarised by the worst feature: the "
        "largest RMSE and max |error|, the lowest PSNR, Pearson r and DSSIM. Violations count points beyond a "
        "codec's declared error bound ('-' = no bound). Per-feature and per-time-step values are in "
        "metrics.json and metrics.parquet.",
    ]
    return Section("Metrics", notes, table=metrics_table(entries))


def build_sections(evaluation: Evaluation, features: list[str], times: list[int]) -> list[Section]:
    entries, names = evaluation.entries, evaluation.features
    colours = codec_colours(entries)
    sections = [overview_section(evaluation), metrics_section(entries),
                Section("Rate-distortion", figures=[rate_distortion_figure(entries, names, features, colours)]),
                Section("Error per feature", figures=[feature_rmse_figure(entries, names, colours)]),
                map_section(evaluation, features, times)]
    for title, make in (("Error histograms", histogram_figure), ("Spectra", spectra_figure)):
        figure = make(entries, names, features, colours)
        if figure is not None:
            sections.append(Section(title, figures=[figure]))
    return sections
