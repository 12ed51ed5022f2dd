"""The report's files: sections rendered as self-contained HTML (PNGs as data URIs) and as Markdown
(linking the same PNGs under DIR/report_images/), and a codec's reconstruction as CF NetCDF."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from satflow.eval.report.document import Section, Table
from satflow.eval.report.load import choose_features, choose_times, find_entry, load_evaluation
from satflow.eval.report.sections import build_sections

IMAGES_DIR = "report_images"


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


def export_reconstruction(eval_dir: str | Path, codec: str, out_nc: str | Path | None = None, *,
                          features: Sequence[str] | None = None) -> Path:
    """A codec's reconstruction as CF NetCDF (one variable per feature), via satflow.export.export_netcdf."""
    import netCDF4

    from satflow.export import export_netcdf

    evaluation = load_evaluation(eval_dir)
    entry = find_entry(evaluation, codec)
    store = evaluation.path / entry["dir"] / "reconstruction.zarr"
    out = Path(out_nc) if out_nc is not None else evaluation.path / entry["dir"] / "reconstruction.nc"
    if store.exists():
        export_netcdf(store, out, features=features)
    else:  # decode the compressed store into a temporary satflow store (statistics included), export that
        import tempfile

        from satflow.eval.api import decode_compressed

        with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as scratch:
            decoded = decode_compressed(evaluation.path / entry["dir"] / "compressed.zarr",
                                        Path(scratch) / "reconstruction.zarr")
            export_netcdf(decoded, out, features=features)
    with netCDF4.Dataset(out, "a") as nc:  # say which codec made these numbers, and from what
        nc.setncatts({"satflow_eval_codec": entry["codec"], "satflow_source_store": evaluation.plan.get("store", ""),
                      "title": f"satflow reconstruction by {entry['codec']}"})
    return out
