"""The report's figures, drawn with matplotlib's Agg canvas (pyplot's global state is never touched)
and returned as 256-colour PNG bytes: rate-distortion, errors per feature, maps, histograms, spectra."""

from __future__ import annotations

import io
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure

from satflow.eval.report.document import Figure
from satflow.eval.report.load import Evaluation, Field2D, floats, per_feature, read_map_fields

DPI = 100  # small PNGs keep the self-contained HTML small


# One sequential colour map per codec family; settings of a family are shades of it.
FAMILY_COLOURMAPS = ("Blues", "Oranges", "Greens", "Reds", "Purples", "Greys", "YlOrBr", "PuRd", "BuGn", "GnBu")


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
    values = per_feature(entry, metric)
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
            axis.bar(positions + (i - (len(entries) - 1) / 2) * bar, floats(per_feature(entry, metric)), bar,
                     color=colours[entry["codec"]], label=entry["codec"])
        axis.set(ylabel=label, xlim=(-0.6, len(features) - 0.4))
        _log_scale_if_wide(axis, np.concatenate([floats(per_feature(e, metric)) for e in entries]))
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
    spectral = [e for e in entries if e.get("wavenumber") and per_feature(e, "spectral_ratio")]
    if not spectral:
        return None
    figure = _new_figure(4.2 * len(chosen), 3.2)
    for axis, feature in zip(np.atleast_1d(figure.subplots(1, len(chosen))), chosen):
        f = features.index(feature)
        for entry in spectral:
            axis.plot(entry["wavenumber"], floats(per_feature(entry, "spectral_ratio")[f]),
                      color=colours[entry["codec"]], label=entry["codec"], lw=1.2)
        axis.axhline(1.0, color="black", lw=0.6, ls="--")
        axis.set(title=feature, xlabel="wavenumber (cycles per grid spacing)", ylabel="power ratio rec./orig.")
        axis.grid(alpha=0.3)
    _legend_outside(figure)
    return Figure("spectra", "Radially averaged power spectrum of the reconstruction over that of the original "
                  "(1 = same power at that scale; below 1 = smoothed).", _png(figure))


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
