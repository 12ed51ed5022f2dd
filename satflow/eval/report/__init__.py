"""`satflow report DIR`: an evaluation directory -> report.html (self-contained) and report.md.

The report is built once as plain sections (text, a table, PNG figures) and rendered twice:
HTML embeds each PNG as a base64 data URI (one file to mail or archive), Markdown links the same
PNG bytes written under DIR/report_images/. Everything comes from DIR/metrics.json except the
maps, which read one 2-D slice per panel lazily from the original and reconstruction stores.
`export_reconstruction` writes a codec's reconstruction as CF NetCDF through satflow.export.

One concern a module: `load` (the evaluation directory, the selections, the store slices),
`table` (the metrics table), `figures` (matplotlib -> PNG), `document` (the plain sections),
`sections` (assembling them), `writers` (HTML, Markdown, images, NetCDF).
"""

from satflow.eval.report.document import Figure, Section, Table
from satflow.eval.report.figures import (DPI, FAMILY_COLOURMAPS, MAP_COLUMNS, codec_colours, feature_rmse_figure,
                                         histogram_figure, map_figure, rate_distortion_figure, spectra_figure)
from satflow.eval.report.load import (DEFAULT_FEATURES, Evaluation, Field2D, ReportError, choose_features,
                                      choose_times, find_entry, load_evaluation, read_field, read_map_fields)
from satflow.eval.report.sections import build_sections, map_section, metrics_section, overview_section
from satflow.eval.report.table import ACCEPTANCE_COLUMN, COLUMNS, Column, format_value, metrics_table, table_columns
from satflow.eval.report.writers import (IMAGES_DIR, STYLE, export_reconstruction, render_html, render_markdown,
                                         write_report)

__all__ = [
    "ACCEPTANCE_COLUMN", "COLUMNS", "Column", "DEFAULT_FEATURES", "DPI", "Evaluation", "FAMILY_COLOURMAPS",
    "Field2D", "Figure", "IMAGES_DIR", "MAP_COLUMNS", "ReportError", "STYLE", "Section", "Table", "build_sections",
    "choose_features", "choose_times", "codec_colours", "export_reconstruction", "feature_rmse_figure",
    "find_entry", "format_value", "histogram_figure", "load_evaluation", "map_figure", "map_section",
    "metrics_section", "metrics_table", "overview_section", "rate_distortion_figure", "read_field",
    "read_map_fields", "render_html", "render_markdown", "spectra_figure", "table_columns", "write_report",
]
