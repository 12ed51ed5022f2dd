"""Sub-command `satflow report DIR`: report.html and report.md from an evaluation; optional NetCDF export."""

from __future__ import annotations

import argparse
from pathlib import Path

from satflow.config import SatflowConfig


def register(subparsers, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "report", parents=[common], help="report.html and report.md of a `satflow eval` directory",
        description="Write DIR/report.html (self-contained, images embedded) and DIR/report.md (images under "
        "DIR/report_images/): the metrics table, rate-distortion plots, per-feature errors, original / "
        "reconstruction / error maps, error histograms and spectra. Optionally export one codec's "
        "reconstruction as CF NetCDF.",
    )
    parser.add_argument("dir", type=Path, help="evaluation directory (the --out of `satflow eval`)")
    parser.add_argument("--feature", dest="features", action="extend", nargs="+", metavar="NAME",
                        help="features for maps, histograms and spectra (default tmbrs-1 tmbrs-8 tmbrs-15 when "
                        "present, else the first, middle and last)")
    parser.add_argument("--time", dest="times", action="extend", nargs="+", type=int, metavar="I",
                        help="evaluated time steps to map, 0 = the first evaluated step (default 0)")
    parser.add_argument("--netcdf", metavar="CODEC",
                        help="also export this codec's reconstruction as CF NetCDF (its spec, folder or name)")
    parser.add_argument("--out", type=Path, metavar="F.nc",
                        help="with --netcdf: the NetCDF file (default DIR/<codec folder>/reconstruction.nc)")
    parser.set_defaults(handler=run_report_command)


def run_report_command(args, config: SatflowConfig | None) -> int:
    from satflow.eval.report import write_report

    if args.out is not None and args.netcdf is None:
        raise ValueError("--out names the NetCDF file of --netcdf CODEC; give --netcdf too")
    written = write_report(args.dir, features=args.features, times=args.times, netcdf=args.netcdf,
                           netcdf_out=args.out)
    for kind, path in written.items():
        print(f"{kind:<9} {path}")
    return 0
