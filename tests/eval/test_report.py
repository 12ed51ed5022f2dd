"""`satflow report`: a real tiny evaluation, its report rendered once, checked against metrics.json and the stores."""

from __future__ import annotations

import argparse
import base64
import json
import math
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from satflow.eval import report
from satflow.eval.report import (Evaluation, ReportError, choose_features, export_reconstruction, format_value,
                                 load_evaluation, read_map_fields, write_report)

CODECS = ["sz3:tol=0.5", "sz3:tol=1.0", "bitround:keepbits=6"]
FEATURES = ["a-1", "a-2", "b"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# rate-distortion, per-feature errors, one map per default feature (3) at step 0, histograms, spectra
EXPECTED_FIGURES = ["rate_distortion", "feature_rmse", "map_a-1_t0", "map_a-2_t0", "map_b_t0",
                    "error_histograms", "spectra"]


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """Steps 1..3 of a 4-step, 3-feature store with NaN gaps, evaluated with three codecs, plus its report."""
    from satflow.eval.api import run_eval
    from satflow.eval.options import EvalConfig
    from satflow.store import write_store_from_arrays

    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(42)
    values = rng.normal(250.0, 10.0, size=(4, 3, 20, 30)).astype(np.float32)
    values[values < 245.0] = np.nan
    store = write_store_from_arrays(
        root / "tiny.zarr", values, times=np.datetime64("2020-01-01") + np.arange(4) * np.timedelta64(6, "h"),
        features=FEATURES, lat=np.linspace(-9.5, 9.5, 20), lon=np.linspace(0.5, 29.5, 30),
        chunks={"time": 1, "feature": -1, "lat": 10, "lon": 30})
    # Starting at step 1 makes the original's and the reconstruction's time indices differ.
    config = EvalConfig(codecs=CODECS, time="1:4", acceptance={"enabled": True})
    run_eval(store, root / "ev", config, client=None, progress=False)
    written = write_report(root / "ev")
    return root / "ev", values, written


def _decoded(directory: Path, folder: str) -> xr.Dataset:
    """A codec's reconstruction as `satflow decode` materialises it from the compressed store."""
    from satflow.eval.api import decode_compressed

    out = directory.parent / f"decoded-{folder}.zarr"
    if not out.exists():
        decode_compressed(directory / folder / "compressed.zarr", out)
    return xr.open_zarr(out)


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a PNG must start with."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class _HtmlParts(HTMLParser):
    """The <img> sources and the metrics table's rows of a report."""

    def __init__(self):
        super().__init__()
        self.images, self.rows, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self._cell)
            self._cell = None


def _html_parts(directory: Path) -> _HtmlParts:
    parser = _HtmlParts()
    parser.feed((directory / "report.html").read_text())
    return parser


def _markdown_images(directory: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (directory / "report.md").read_text())


def test_report_writes_html_markdown_and_image_folder(evaluation):
    directory, _, written = evaluation
    assert written == {"html": directory / "report.html", "markdown": directory / "report.md",
                       "images": directory / "report_images"}
    assert sorted(p.stem for p in written["images"].iterdir()) == sorted(EXPECTED_FIGURES)


def test_html_embeds_one_non_empty_png_per_figure_and_loads_nothing_external(evaluation):
    directory, _, _ = evaluation
    text = (directory / "report.html").read_text()
    images = _html_parts(directory).images
    assert [image["alt"] for image in images] == EXPECTED_FIGURES
    for image in images:
        prefix, _, payload = image["src"].partition(",")
        assert prefix == "data:image/png;base64"
        width, height = _png_size(base64.b64decode(payload, validate=True))
        assert width > 0 and height > 0
    assert not re.search(r"<script|<link|src=\"(?!data:)|url\(", text)


def test_markdown_links_the_same_pngs_as_files(evaluation):
    directory, _, _ = evaluation
    links = _markdown_images(directory)
    assert links == [f"report_images/{name}.png" for name in EXPECTED_FIGURES]
    embedded = [base64.b64decode(image["src"].partition(",")[2]) for image in _html_parts(directory).images]
    for link, png in zip(links, embedded):
        data = (directory / link).read_bytes()
        assert min(_png_size(data)) > 0
        assert data == png


def _finite(values):
    return [v for v in values if v is not None and not math.isnan(v)]


def _expected_row(entry: dict) -> list[str]:
    """The table row computed here from metrics.json alone: worst feature per error metric."""
    per_feature = entry["per_feature"]
    violations = [v for v in per_feature["violations"] if v is not None]
    passed = entry["acceptance"]["pass"]
    return [entry["codec"], format_value(entry["bits_per_value"]), format_value(entry["compression_ratio"]),
            format_value(entry["compression_ratio_vs_source"]),
            format_value(max(_finite(per_feature["rmse"]))), format_value(max(_finite(per_feature["nrmse"]))),
            format_value(max(_finite(per_feature["max_abs_error"]))), format_value(min(_finite(per_feature["psnr"]))),
            format_value(min(_finite(per_feature["pearson_r"])), 7), format_value(min(_finite(per_feature["dssim"])), 6),
            str(sum(violations)) if violations else "-",
            format_value(entry["encode_mb_per_s"]), format_value(entry["decode_mb_per_s"]),
            f"{sum(passed)}/{len(passed)}"]


def test_metrics_table_equals_metrics_json(evaluation):
    directory, _, _ = evaluation
    entries = json.loads((directory / "metrics.json").read_text())
    header, *rows = _html_parts(directory).rows
    assert header[:3] == ["codec", "bits/value", "ratio"] and header[-1] == "acceptance pass"
    assert rows == [_expected_row(entry) for entry in entries]
    markdown = (directory / "report.md").read_text()
    for row in rows:
        assert "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" in markdown


def test_format_value_prints_missing_and_nan_as_a_dash_and_keeps_infinity():
    values = (None, float("nan"), float("inf"), 3, 0.123456, 12345.678)
    assert [format_value(v) for v in values] == ["-", "-", "inf", "3", "0.1235", "1.235e+04"]


def test_maps_read_the_original_at_the_evaluated_steps_offset(evaluation):
    directory, values, _ = evaluation
    loaded = load_evaluation(directory)
    original, reconstructions = read_map_fields(loaded, "b", 2)
    np.testing.assert_array_equal(original.values, values[3, 2])  # evaluated step 2 = store step 1 + 2
    for entry, reconstruction in zip(loaded.entries, reconstructions):
        stored = _decoded(directory, entry["dir"])["X"].isel(time=2).sel(feature="b")
        np.testing.assert_array_equal(reconstruction.values, stored.values)
        assert np.nanmax(np.abs(reconstruction.values - original.values)) > 0  # a lossy codec, not a copy


def test_chosen_features_and_times_make_one_map_each(evaluation):
    directory, _, _ = evaluation
    section = report.map_section(load_evaluation(directory), ["b"], [1, 2])
    assert [figure.name for figure in section.figures] == ["map_b_t1", "map_b_t2"]
    assert all(min(_png_size(figure.png)) > 0 for figure in section.figures)


def test_a_moved_original_store_leaves_the_maps_out_with_a_note(evaluation, tmp_path):
    directory, _, _ = evaluation
    loaded = load_evaluation(directory)
    moved = Evaluation(directory, loaded.entries, {**loaded.plan, "store": str(tmp_path / "gone.zarr")}, {})
    section = report.map_section(moved, ["b"], [0])
    assert section.figures == []
    assert section.text == [f"Maps left out: {tmp_path / 'gone.zarr'}: no satflow store here (no Zarr v3 group); "
                            "run `satflow ingest` first"]


def test_default_features_are_amsu_channels_1_8_15_when_present_else_first_middle_last():
    names = [f"tmbrs-{i}" for i in range(1, 16)] + ["said", "hmsl"]
    amsu = Evaluation(Path("ev"), [{"features": names}], {}, {})
    assert choose_features(amsu, None) == ["tmbrs-1", "tmbrs-8", "tmbrs-15"]
    fewer = Evaluation(Path("ev"), [{"features": [f"tmbrs-{i}" for i in range(1, 11)]}], {}, {})
    assert choose_features(fewer, None) == ["tmbrs-1", "tmbrs-8"]
    other = Evaluation(Path("ev"), [{"features": ["u", "v", "w", "x"]}], {}, {})
    assert choose_features(other, None) == ["u", "w", "x"]


def test_unknown_feature_and_time_outside_the_evaluation_are_refused(evaluation):
    directory, _, _ = evaluation
    with pytest.raises(ReportError, match=r"unknown feature\(s\) c; the evaluation has: a-1, a-2, b"):
        write_report(directory, features=["c"])
    with pytest.raises(ReportError, match=r"time step\(s\) \[3\] are outside the evaluation's 3 steps; give --time 0..2"):
        write_report(directory, times=[3])


def test_netcdf_export_equals_the_reconstruction_store(evaluation, tmp_path):
    directory, _, _ = evaluation
    # The spec with its parameters in any order, its folder or its unique name all name one codec.
    out = export_reconstruction(directory, "bitround", tmp_path / "rec.nc")
    stored = _decoded(directory, "bitround-keepbits=6")
    with xr.open_dataset(out) as nc:
        assert nc.attrs["satflow_eval_codec"] == "bitround:keepbits=6"
        for name, variable in (("a-1", "a_1"), ("a-2", "a_2"), ("b", "b")):
            np.testing.assert_array_equal(nc[variable].values, stored["X"].sel(feature=name).values)
        np.testing.assert_array_equal(nc["time"].values, stored["time"].values)


def test_a_codec_name_shared_by_several_settings_is_refused(evaluation):
    directory, _, _ = evaluation
    with pytest.raises(ReportError, match=r"several codecs are named 'sz3'; choose one spec or folder of: "
                       r"sz3:tol=0.5, sz3:tol=1.0, bitround:keepbits=6"):
        export_reconstruction(directory, "sz3")
    assert report.find_entry(load_evaluation(directory), "sz3-tol=1.0")["codec"] == "sz3:tol=1.0"


@pytest.mark.parametrize("make", [lambda p: p / "missing", lambda p: p])
def test_a_directory_without_metrics_says_to_run_eval_first(tmp_path, make):
    directory = make(tmp_path)
    with pytest.raises(ReportError) as error:
        write_report(directory)
    assert str(error.value) == (f"{directory}: no evaluation here (metrics.json is missing); "
                                f"run `satflow eval STORE --codec SPEC --out {directory}` first")


def _cli(argv: list[str]) -> argparse.Namespace:
    from satflow.cli.report import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(), argparse.ArgumentParser(add_help=False))
    return parser.parse_args(argv)


def test_cli_maps_flags_onto_write_report_and_prints_the_paths(monkeypatch, capsys):
    calls = []

    def fake_write_report(directory, **options):
        calls.append((directory, options))
        return {"html": Path("ev/report.html"), "netcdf": Path("rec.nc")}

    monkeypatch.setattr(report, "write_report", fake_write_report)
    args = _cli(["report", "ev", "--feature", "a-1", "b", "--feature", "a-2", "--time", "0", "2",
                 "--netcdf", "sz3:tol=0.5", "--out", "rec.nc"])
    assert args.handler(args, None) == 0
    assert calls == [(Path("ev"), {"features": ["a-1", "b", "a-2"], "times": [0, 2], "netcdf": "sz3:tol=0.5",
                                   "netcdf_out": Path("rec.nc")})]
    assert capsys.readouterr().out == "html      ev/report.html\nnetcdf    rec.nc\n"


def test_cli_refuses_out_without_netcdf_and_a_directory_without_eval(tmp_path):
    args = _cli(["report", str(tmp_path), "--out", "rec.nc"])
    with pytest.raises(ValueError, match="--out names the NetCDF file of --netcdf CODEC; give --netcdf too"):
        args.handler(args, None)
    args = _cli(["report", str(tmp_path / "nothing")])
    with pytest.raises(ValueError, match="run `satflow eval STORE --codec SPEC --out .*nothing` first"):
        args.handler(args, None)
