"""`satflow report DIR`: an evaluation directory -> report.html (self-contained) and report.md.

The report is built once as plain sections (text, a table, PNG figures) and rendered twice:
HTML embeds each PNG as a base64 data URI (one file to mail or archive), Markdown links the same
PNG bytes written under DIR/report_images/. Everything comes from DIR/metrics.json except the
maps, which read one 2-D slice per panel lazily from the original and reconstruction stores.

`export_reconstruction` writes a codec's reconstruction as CF NetCDF through satflow.export.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from satflow.version import __version__

DEFAULT_FEATURES = ("tmbrs-1", "tmbrs-8", "tmbrs-15")  # AMSU-A channels 1, 8 and 15
IMAGES_DIR = "report_images"
DPI = 100  # small PNGs keep the self-contained HTML small
# One sequential colour map per codec family; settings of a family are shades of it.
FAMILY_COLOURMAPS = ("Blues", "Oranges", "Greens", "Reds", "Purples", "Greys", "YlOrBr", "PuRd", "BuGn", "GnBu")


class ReportError(ValueError):
    """A directory that is not a finished evaluation, or a selection it does not hold."""


# --- the evaluation directory -----------------------------------------------------------------
@dataclass(frozen=True)
class Evaluation:
    path: Path
    entries: list[dict]
    plan: dict
    manifest: dict

    @property
    def features(self) -> list[str]:
        return list(self.entries[0]["features"]) if self.entries else list(self.plan.get("features", []))

    @property
    def n_steps(self) -> int:
        t0, t1 = self.plan["time_range"]
        return int(t1) - int(t0)


def load_evaluation(eval_dir: str | Path) -> Evaluation:
    path = Path(eval_dir)
    metrics = path / "metrics.json"
    if not metrics.is_file():
        raise ReportError(f"{path}: no evaluation here (metrics.json is missing); "
                          f"run `satflow eval STORE --codec SPEC --out {path}` first")
    entries = json.loads(metrics.read_text())
    if not entries:
        raise ReportError(f"{metrics}: no codec entries; re-run `satflow eval` with at least one --codec")
    if not (path / "plan.json").is_file():
        raise ReportError(f"{path}: metrics.json without plan.json; re-run the same `satflow eval` to rewrite both")
    return Evaluation(path, entries, _read_json(path / "plan.json"), _read_json(path / "manifest.json"))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def find_entry(evaluation: Evaluation, codec: str) -> dict:
    """The metrics.json entry named by its spec (any parameter order), its folder, or its unique codec name."""
    wanted = {codec, _normalised_spec(codec)}
    matches = [e for e in evaluation.entries if e["codec"] in wanted or e["dir"] == codec]
    if not matches:
        matches = [e for e in evaluation.entries if e["name"] == codec]
    if len(matches) == 1:
        return matches[0]
    choices = ", ".join(e["codec"] for e in evaluation.entries)
    problem = "several codecs are" if matches else "no codec is"
    raise ReportError(f"{evaluation.path}: {problem} named {codec!r}; choose one spec or folder of: {choices}")


def _normalised_spec(text: str) -> str:
    from satflow.codecs.spec import CodecSpec

    try:
        return str(CodecSpec.parse(text))
    except (ValueError, TypeError):
        return text


# --- the metrics table ------------------------------------------------------------------------
def _floats(values: Sequence) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _worst(values: Sequence, reduce: Callable) -> float | None:
    """max (errors) or min (scores) over features, ignoring NaN (not inf: a lossless PSNR); None if all NaN."""
    array = _floats(values)
    known = array[~np.isnan(array)]
    return float(reduce(known)) if known.size else None


def _per_feature(entry: dict, metric: str) -> list:
    return entry["per_feature"].get(metric) or []


def _violations(entry: dict) -> int | None:
    counts = [v for v in _per_feature(entry, "violations") if v is not None]
    return int(sum(counts)) if counts else None


def _acceptance(entry: dict) -> str | None:
    passed = (entry.get("acceptance") or {}).get("pass")
    return None if passed is None else f"{sum(passed)}/{len(passed)}"


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[dict], object]
    digits: int = 4


# Errors are summarised by the worst feature (largest error, lowest score): one bad channel
# must not hide behind good averages.
COLUMNS = (
    Column("codec", lambda e: e["codec"]),
    Column("bits/value", lambda e: e["bits_per_value"]),
    Column("ratio", lambda e: e["compression_ratio"]),
    Column("ratio vs source", lambda e: e.get("compression_ratio_vs_source")),
    Column("RMSE (max)", lambda e: _worst(_per_feature(e, "rmse"), np.max)),
    Column("NRMSE (max)", lambda e: _worst(_per_feature(e, "nrmse"), np.max)),
    Column("max |error|", lambda e: _worst(_per_feature(e, "max_abs_error"), np.max)),
    Column("PSNR dB (min)", lambda e: _worst(_per_feature(e, "psnr"), np.min)),
    Column("Pearson r (min)", lambda e: _worst(_per_feature(e, "pearson_r"), np.min), digits=7),
    Column("DSSIM (min)", lambda e: _worst(_per_feature(e, "dssim"), np.min), digits=6),
    Column("violations", _violations),
    Column("encode MB/s", lambda e: e.get("encode_mb_per_s")),
    Column("decode MB/s", lambda e: e.get("decode_mb_per_s")),
)
ACCEPTANCE_COLUMN = Column("acceptance pass", _acceptance)


def format_value(value: object, digits: int = 4) -> str:
    """How the report prints a number: `digits` significant digits; '-' for missing or NaN; 'inf' stays."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{value:.{digits}g}"


def table_columns(entries: list[dict]) -> tuple[Column, ...]:
    return COLUMNS + ((ACCEPTANCE_COLUMN,) if any("acceptance" in e for e in entries) else ())


def metrics_table(entries: list[dict]) -> Table:
    columns = table_columns(entries)
    rows = [[format_value(c.value(entry), c.digits) for c in columns] for entry in entries]
    return Table([c.header for c in columns], rows)


# --- the document -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under report_images/
    caption: str
    png: bytes


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    table: Table | None = None
    figures: list[Figure] = field(default_factory=list)


# --- colours ----------------------------------------------------------------------------------
def codec_colours(entries: list[dict]) -> dict[str, tuple]:
    """Spec -> RGBA: one colour map per codec family, darker shades for more bits per value."""
    from matplotlib import colormaps

    colours = {}
    for index, (name, members) in enumerate(_families(entries).items()):
        cmap = colormaps[FAMILY_COLOURMAPS[index % len(FAMILY_COLOURMAPS)]]
        shades = np.linspace(0.5, 0.9, len(members)) if len(members) > 1 else [0.7]
        colours.update({e["codec"]: cmap(float(s)) for e, s in zip(members, shades)})
    return colours


def _families(entries: list[dict]) -> dict[str, list[dict]]:
    """Codec name -> its entries sorted by bits per value (the order of a rate-distortion curve)."""
    families: dict[str, list[dict]] = {}
    for entry in entries:
        families.setdefault(entry["name"], []).append(entry)
    return {name: sorted(members, key=lambda e: e["bits_per_value"]) for name, members in families.items()}


# --- figures ----------------------------------------------------------------------------------
def _new_figure(width: float, height: float) -> MplFigure:
    figure = MplFigure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # Agg explicitly; pyplot's global state is never touched
    return figure


def _png(figure: MplFigure) -> bytes:
    """The figure as a 256-colour PNG: maps of noisy errors came out 3x smaller than as RGBA, looking the same."""
    from PIL import Image  # matplotlib's own dependency

    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3]
    buffer = io.BytesIO()
    Image.fromarray(pixels).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, format="png",
                                                                                        optimize=True)
    return buffer.getvalue()


def _legend_outside(figure: MplFigure) -> None:
    """One legend for all panels, right of them, so it never hides a curve."""
    figure.legend(*figure.axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize="x-small")


def _log_scale_if_wide(axis, values: np.ndarray) -> None:
    """Log y when the positive values span more than 20x (errors of features in different units)."""
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if positive.size and (finite >= 0).all() and positive.max() / positive.min() > 20:
        axis.set_yscale("log")


def _feature_values(entry: dict, metric: str, f: int) -> float:
    values = _per_feature(entry, metric)
    return np.nan if f >= len(values) or values[f] is None else float(values[f])


def rate_distortion_figure(entries: list[dict], features: list[str], chosen: list[str], colours: dict) -> Figure:
    """Rows: RMSE and max abs error; columns: chosen features (errors in different units never mix)."""
    figure = _new_figure(4.0 * len(chosen) + 0.5, 6.4)
    axes = np.asarray(figure.subplots(2, len(chosen), squeeze=False))
    for row, (metric, label) in enumerate((("rmse", "RMSE"), ("max_abs_error", "max |error|"))):
        for axis, feature in zip(axes[row], chosen):
            _rate_distortion_panel(axis, entries, metric, features.index(feature), colours)
            axis.set(xlabel="bits per value (all features)", ylabel=f"{label} of {feature}")
    _legend_outside(figure)
    return Figure("rate_distortion", "Rate-distortion: each codec's bits per value against the RMSE (top) and "
                  "max abs error (bottom) of the chosen features; settings of one codec are joined in order of "
                  "bits.", _png(figure))


def _rate_distortion_panel(axis, entries: list[dict], metric: str, f: int, colours: dict) -> None:
    for members in _families(entries).values():
        bits = [e["bits_per_value"] for e in members]
        errors = [_feature_values(e, metric, f) for e in members]
        axis.plot(bits, errors, "-", color=colours[members[len(members) // 2]["codec"]], lw=1, zorder=1)
        for entry, x, y in zip(members, bits, errors):
            axis.scatter([x], [y], color=colours[entry["codec"]], edgecolor="black", lw=0.5, zorder=2,
                         label=entry["codec"])
    _log_scale_if_wide(axis, np.array([_feature_values(e, metric, f) for e in entries]))
    axis.grid(alpha=0.3)


def feature_rmse_figure(entries: list[dict], features: list[str], colours: dict) -> Figure:
    """Grouped bars per feature: RMSE in the feature's units (top) and NRMSE, comparable across features."""
    width = min(16.0, max(6.0, 0.12 * len(features) * max(len(entries), 2)))
    figure = _new_figure(width, 6.4)
    positions, bar = np.arange(len(features)), 0.8 / len(entries)
    for axis, (metric, label) in zip(figure.subplots(2, 1, sharex=True),
                                     (("rmse", "RMSE (feature units)"), ("nrmse", "NRMSE (RMSE / valid range)"))):
        for i, entry in enumerate(entries):
            axis.bar(positions + (i - (len(entries) - 1) / 2) * bar, _floats(_per_feature(entry, metric)), bar,
                     color=colours[entry["codec"]], label=entry["codec"])
        axis.set(ylabel=label, xlim=(-0.6, len(features) - 0.4))
        _log_scale_if_wide(axis, np.concatenate([_floats(_per_feature(e, metric)) for e in entries]))
        axis.grid(axis="y", alpha=0.3)
    axis.set_xticks(positions, features, rotation=90 if len(features) > 8 else 0, fontsize="small")
    figure.axes[0].legend(fontsize="small")
    return Figure("feature_rmse", "RMSE and NRMSE per feature and codec, over valid points.", _png(figure))


def histogram_figure(entries: list[dict], features: list[str], chosen: list[str], colours: dict) -> Figure | None:
    histograms = [(e, e.get("histogram")) for e in entries if e.get("histogram")]
    if not histograms:
        return None
    figure = _new_figure(4.2 * len(chosen), 3.4)
    for axis, feature in zip(np.atleast_1d(figure.subplots(1, len(chosen))), chosen):
        f = features.index(feature)
        for entry, histogram in histograms:
            counts = np.asarray(histogram["counts"][f], dtype=np.float64)
            share = counts / counts.sum() if counts.sum() else counts
            axis.stairs(np.where(share > 0, share, np.nan), np.arange(len(counts) + 1),
                        color=colours[entry["codec"]], label=entry["codec"], lw=1.2)
        _histogram_ticks(axis, histograms[0][1]["edges"])
        axis.set(yscale="log", title=f"{feature} (σ = {histograms[0][1]['scale'][f]:.3g})",
                 xlabel="reconstruction − original, in σ", ylabel="share of valid points")
        axis.grid(alpha=0.3)
    _legend_outside(figure)
    return Figure("error_histograms", "Error distributions on the eval's fixed bins (in units of each feature's "
                  "standard deviation σ; the outer bins hold everything beyond ±10σ).", _png(figure))


def _histogram_ticks(axis, edges: list[float]) -> None:
    """Edge i sits at x = i + 1 (bin 0 is the underflow); label zero and every decade."""
    ticks = [(i + 1, e) for i, e in enumerate(edges) if e == 0 or np.isclose(np.log10(abs(e)) % 1, 0, atol=1e-9)
             or np.isclose(np.log10(abs(e)) % 1, 1, atol=1e-9)]
    ticks = ticks[::2] if len(ticks) > 9 else ticks
    axis.set_xticks([x for x, _ in ticks], [f"{e:g}" for _, e in ticks], rotation=60, fontsize="x-small")


def spectra_figure(entries: list[dict], features: list[str], chosen: list[str], colours: dict) -> Figure | None:
    spectral = [e for e in entries if e.get("wavenumber") and _per_feature(e, "spectral_ratio")]
    if not spectral:
        return None
    figure = _new_figure(4.2 * len(chosen), 3.2)
    for axis, feature in zip(np.atleast_1d(figure.subplots(1, len(chosen))), chosen):
        f = features.index(feature)
        for entry in spectral:
            axis.plot(entry["wavenumber"], _floats(_per_feature(entry, "spectral_ratio")[f]),
                      color=colours[entry["codec"]], label=entry["codec"], lw=1.2)
        axis.axhline(1.0, color="black", lw=0.6, ls="--")
        axis.set(title=feature, xlabel="wavenumber (cycles per grid spacing)", ylabel="power ratio rec./orig.")
        axis.grid(alpha=0.3)
    _legend_outside(figure)
    return Figure("spectra", "Radially averaged power spectrum of the reconstruction over that of the original "
                  "(1 = same power at that scale; below 1 = smoothed).", _png(figure))


# --- maps -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field2D:
    values: np.ndarray
    lat: np.ndarray
    lon: np.ndarray


def read_field(store: str | Path, t: int, feature: str) -> Field2D:
    """One (lat, lon) slice of X, read lazily (only the chunks that hold it)."""
    from satflow.store import open_store

    ds = open_store(store)
    values = ds["X"].isel(time=t).sel(feature=feature).values
    return Field2D(np.asarray(values, dtype=np.float32), ds["lat"].values, ds["lon"].values)


def read_map_fields(evaluation: Evaluation, feature: str, t: int) -> tuple[Field2D, list[Field2D]]:
    """Evaluated step t of the original (its step time_range[0] + t) and of each codec's reconstruction."""
    original = read_field(evaluation.plan["store"], int(evaluation.plan["time_range"][0]) + t, feature)
    return original, [read_field(evaluation.path / e["dir"] / "reconstruction.zarr", t, feature)
                      for e in evaluation.entries]


def _show(axis, field2d: Field2D, title: str, cmap: str, **limits):
    from matplotlib import colormaps

    lat, lon = field2d.lat, field2d.lon
    extent = (float(lon[0]), float(lon[-1]), float(min(lat[0], lat[-1])), float(max(lat[0], lat[-1])))
    image = axis.imshow(field2d.values, extent=extent, origin="lower" if lat[0] < lat[-1] else "upper",
                        interpolation="nearest", aspect="auto",
                        cmap=colormaps[cmap].with_extremes(bad="0.85"), **limits)  # invalid (NaN) in light grey
    axis.set_title(title, fontsize="small")
    axis.tick_params(labelsize="x-small")
    return image


def _value_limits(values: np.ndarray) -> tuple[float | None, float | None]:
    finite = values[np.isfinite(values)]
    return (float(np.percentile(finite, 1)), float(np.percentile(finite, 99))) if finite.size else (None, None)


MAP_COLUMNS = 4  # codecs per row of maps: more would shrink panels until their titles overlap


def map_figure(evaluation: Evaluation, feature: str, t: int, time_label: str) -> Figure:
    """Original, then per codec its reconstruction (same colour scale) above its error, 4 codecs a row."""
    original, reconstructions = read_map_fields(evaluation, feature, t)
    entries = evaluation.entries
    figure, values_axes, error_axes, spare = _map_grid(len(entries))
    vmin, vmax = _value_limits(original.values)
    image = _show(spare[0], original, "original", cmap="viridis", vmin=vmin, vmax=vmax)
    for entry, reconstruction, values_axis, error_axis in zip(entries, reconstructions, values_axes, error_axes):
        title = textwrap.fill(entry["codec"].replace(",", ", "), 28)  # long specs wrap instead of overlapping
        image = _show(values_axis, reconstruction, title, cmap="viridis", vmin=vmin, vmax=vmax)
        error = reconstruction.values.astype(np.float64) - original.values
        bound = float(np.nanmax(np.abs(error))) if np.isfinite(error).any() else 0.0
        # Each codec's error on its own scale: a shared one would paint the small-error codecs blank.
        error_image = _show(error_axis, Field2D(error / (bound or 1.0), original.lat, original.lon),
                            f"error, max |e| = {bound:.3g}", cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    # Colour bars in axes of their own, so no panel column is squeezed to make room for them.
    figure.colorbar(image, cax=figure.add_axes((0.92, 0.55, 0.012, 0.35)), label=feature)
    figure.colorbar(error_image, cax=figure.add_axes((0.92, 0.1, 0.012, 0.35)), label="e / max |e|")
    _explain_error_row(spare[1])
    for axis in spare[2:]:
        axis.set_axis_off()
    figure.suptitle(f"{feature} at {time_label} (evaluated step {t})", fontsize="medium")
    return Figure(f"map_{_safe(feature)}_t{t}", f"{feature} at {time_label}: original and reconstructions on "
                  "one colour scale (each codec's upper panel); reconstruction − original below it, divided by its "
                  "own max |error| (in the panel title); grey = invalid.", _png(figure))


def _map_grid(n_codecs: int) -> tuple[MplFigure, list, list, list]:
    """Rows of up to MAP_COLUMNS codecs, each a value panel above an error panel, after a first
    column for the original and the legend of the error panels; returns the value axes, the
    error axes (one each per codec) and the first column's axes."""
    columns = min(n_codecs, MAP_COLUMNS)
    blocks = -(-n_codecs // columns)
    # A fixed layout instead of the constrained one: laying out many panels' text took seconds.
    figure = MplFigure(figsize=(2.6 * (columns + 1) + 0.8, 3.6 * blocks + 0.4), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = np.asarray(figure.subplots(2 * blocks, columns + 1, sharex=True, sharey=True)).reshape(2 * blocks, -1)
    values_axes = [axes[2 * (i // columns), 1 + i % columns] for i in range(n_codecs)]
    error_axes = [axes[2 * (i // columns) + 1, 1 + i % columns] for i in range(n_codecs)]
    used = set(map(id, values_axes + error_axes)) | {id(axes[0, 0]), id(axes[1, 0])}
    for axis in axes.ravel():
        if id(axis) not in used:
            axis.set_axis_off()
    figure.subplots_adjust(left=0.05, right=0.9, bottom=0.06, top=1 - 0.9 / (3.6 * blocks + 0.4),
                           wspace=0.35, hspace=0.45)
    return figure, values_axes, error_axes, list(axes[:, 0])


def _explain_error_row(axis) -> None:
    axis.set_axis_off()
    axis.text(0.5, 0.5, "error e =\nreconstruction − original,\neach panel divided by\nits own max |e|",
              ha="center", va="center", fontsize="small", transform=axis.transAxes)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def choose_features(evaluation: Evaluation, features: Sequence[str] | None) -> list[str]:
    """The asked features (checked), else those of AMSU-A channels 1, 8, 15 present, else first, middle, last."""
    available = evaluation.features
    if features:
        unknown = [f for f in features if f not in available]
        if unknown:
            raise ReportError(f"{evaluation.path}: unknown feature(s) {', '.join(unknown)}; "
                              f"the evaluation has: {', '.join(available)}")
        return list(dict.fromkeys(features))
    present = [f for f in DEFAULT_FEATURES if f in available]
    if present:
        return present
    return list(dict.fromkeys(available[i] for i in (0, len(available) // 2, len(available) - 1)))


def choose_times(evaluation: Evaluation, times: Sequence[int] | None) -> list[int]:
    """Time steps of the evaluation (0 = its first step); default the first."""
    chosen = list(dict.fromkeys(int(t) for t in times)) if times else [0]
    outside = [t for t in chosen if not 0 <= t < evaluation.n_steps]
    if outside:
        raise ReportError(f"{evaluation.path}: time step(s) {outside} are outside the evaluation's "
                          f"{evaluation.n_steps} steps; give --time 0..{evaluation.n_steps - 1}")
    return chosen


def _time_labels(evaluation: Evaluation) -> list[str]:
    import xarray as xr

    times = xr.open_zarr(str(evaluation.path / evaluation.entries[0]["dir"] / "reconstruction.zarr"))["time"].values
    if np.issubdtype(times.dtype, np.datetime64):
        return [str(label) for label in np.datetime_as_string(times, unit="m")]
    return [str(t) for t in times]  # cftime dates (climatologies from year 0)


def map_section(evaluation: Evaluation, features: list[str], times: list[int]) -> Section:
    section = Section("Maps")
    try:
        labels = _time_labels(evaluation)
        section.figures = [map_figure(evaluation, f, t, labels[t]) for t in times for f in features]
    except (FileNotFoundError, ValueError, KeyError) as err:  # a moved store must not cost the whole report
        section.text.append(f"Maps left out: {err}")
    return section


# --- assembling -------------------------------------------------------------------------------
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


# --- rendering --------------------------------------------------------------------------------
STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f0f0}figure{margin:1em 0}
img{max-width:100%;height:auto}figcaption{font-size:0.9em;color:#555}"""


def render_html(sections: list[Section], title: str) -> str:
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(line)}</p>" for line in section.text]
        if section.table:
            parts.append(_html_table(section.table))
        for figure in section.figures:
            data = base64.b64encode(figure.png).decode("ascii")
            parts.append(f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{html.escape(figure.name)}\">"
                         f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_table(table: Table) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table class=\"metrics\"><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"


def render_markdown(sections: list[Section], title: str) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for line in section.text:
            lines += [line, ""]
        if section.table:
            lines += _markdown_table(section.table) + [""]
        for figure in section.figures:
            lines += [f"![{figure.name}]({IMAGES_DIR}/{figure.name}.png)", "", f"*{figure.caption}*", ""]
    return "\n".join(lines)


def _markdown_table(table: Table) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [row(table.header), "|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|",
            *(row(r) for r in table.rows)]


def _write_images(sections: list[Section], folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    for stale in folder.glob("*.png"):  # a re-run with other features must not leave old maps behind
        stale.unlink()
    paths = []
    for figure in (f for s in sections for f in s.figures):
        path = folder / f"{figure.name}.png"
        path.write_bytes(figure.png)
        paths.append(path)
    return paths


def write_report(eval_dir: str | Path, *, features: Sequence[str] | None = None, times: Sequence[int] | None = None,
                 netcdf: str | None = None, netcdf_out: str | Path | None = None) -> dict[str, Path]:
    """Write DIR/report.html, DIR/report.md and DIR/report_images/; optionally a codec's NetCDF.

    features: feature names for maps, histograms and spectra (default AMSU-A channels 1, 8, 15 when
    present, else the first, middle and last); times: evaluated time steps for maps (default 0);
    netcdf: a codec (spec, folder or unique name) whose reconstruction is also exported, to
    `netcdf_out` (default DIR/<codec dir>/reconstruction.nc). Returns {"html", "markdown", "images"[, "netcdf"]}.
    """
    evaluation = load_evaluation(eval_dir)
    sections = build_sections(evaluation, choose_features(evaluation, features), choose_times(evaluation, times))
    title = f"satflow evaluation: {evaluation.path.resolve().name}"
    written = {"html": evaluation.path / "report.html", "markdown": evaluation.path / "report.md",
               "images": evaluation.path / IMAGES_DIR}
    _write_images(sections, written["images"])
    written["html"].write_text(render_html(sections, title), encoding="utf-8")
    written["markdown"].write_text(render_markdown(sections, title), encoding="utf-8")
    if netcdf is not None:
        written["netcdf"] = export_reconstruction(evaluation.path, netcdf, netcdf_out)
    return written


# --- NetCDF -----------------------------------------------------------------------------------
def export_reconstruction(eval_dir: str | Path, codec: str, out_nc: str | Path | None = None, *,
                          features: Sequence[str] | None = None) -> Path:
    """A codec's reconstruction as CF NetCDF (one variable per feature), via satflow.export.export_netcdf."""
    import netCDF4

    from satflow.export import export_netcdf

    evaluation = load_evaluation(eval_dir)
    entry = find_entry(evaluation, codec)
    store = evaluation.path / entry["dir"] / "reconstruction.zarr"
    out = Path(out_nc) if out_nc is not None else evaluation.path / entry["dir"] / "reconstruction.nc"
    export_netcdf(store, out, features=features)
    with netCDF4.Dataset(out, "a") as nc:  # say which codec made these numbers, and from what
        nc.setncatts({"satflow_eval_codec": entry["codec"], "satflow_source_store": evaluation.plan.get("store", ""),
                      "title": f"satflow reconstruction by {entry['codec']}"})
    return out
