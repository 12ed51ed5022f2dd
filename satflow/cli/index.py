"""`satflow index ...`: build an index, check it for leaks, derive strata, samples, triplets,
time windows, and export patches.

`satflow index STORE --out INDEX.parquet` is short for `satflow index build STORE --out ...`.
Handlers map flags onto `config.index` (flags win over the file) and call one function of
`satflow.index.api` (or `satflow.index.summary`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from satflow.cli.cluster_flag import add_cluster_flag
from satflow.config import SatflowConfig

ACTIONS = ("build", "summary", "check-leaks", "stratify", "sample", "triplets", "windows", "export")


class _DefaultBuild(argparse._SubParsersAction):
    """Sub-actions of `satflow index`; a first argument that names none of them means `build`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = None  # let any first word through; __call__ decides

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] not in self._name_parser_map:
            values = ["build", *values]
        super().__call__(parser, namespace, values, option_string)


def register(subparsers, common: argparse.ArgumentParser) -> None:
    # `common` (--config/--set) goes on each action, so flags are parsed once, after the action.
    parser = subparsers.add_parser(
        "index", help="patch index: build, check-leaks, stratify, sample, triplets, windows, export",
        description="Index every usable (time, patch) of a store into Parquet (selectors, not copies), with "
        "leak-free splits; derive strata, samples, triplets and time windows; export patches. "
        "`satflow index STORE --out INDEX.parquet` builds an index.",
    )
    actions = parser.add_subparsers(dest="index_action", metavar="ACTION", action=_DefaultBuild,
                                    title="actions (default: build)")
    for register_action in (_build, _summary, _check_leaks, _stratify, _sample, _triplets, _windows, _export):
        register_action(actions, common)


# --- build -------------------------------------------------------------------------------------
def _build(actions, common) -> None:
    parser = actions.add_parser(
        "build", parents=[common], help="index a store (reads only the mask M)",
        description="Index every (time, patch) of a store: geometry, valid fractions, window and split. "
        "Flags override the config section `index:`.",
    )
    parser.add_argument("store", help="store path (a .zarr directory)")
    parser.add_argument("--out", required=True, type=Path, help="index file to write (.parquet)")
    parser.add_argument("--patch-size", type=int, help="patch side in grid cells (index.patch_size)")
    parser.add_argument("--stride", type=int, help="step between patch origins; < patch size overlaps")
    parser.add_argument("--max-nodata", type=float, dest="max_nodata_fraction",
                        help="drop patches with a larger invalid fraction (over all features)")
    parser.add_argument("--min-feature-valid", type=float, dest="min_feature_valid_fraction",
                        help="drop patches where any feature has a smaller valid fraction")
    parser.add_argument("--time-start", help="first time (ISO), inclusive")
    parser.add_argument("--time-end", help="last time (ISO), inclusive")
    parser.add_argument("--bbox", nargs=4, type=float, metavar=("LAT_MIN", "LAT_MAX", "LON_MIN", "LON_MAX"),
                        help="keep patches whose centre lies in this box (LON_MIN > LON_MAX crosses the dateline)")
    parser.add_argument("--per-feature", action="store_true", help="add valid_frac_<feature> columns")
    parser.add_argument("--split-mode", choices=["space", "time"], help="geographic windows or blocked time")
    parser.add_argument("--fractions", nargs=3, type=float, metavar=("TRAIN", "VAL", "TEST"),
                        help="split fractions (sum to 1)")
    parser.add_argument("--seed", type=int, help="split seed")
    parser.add_argument("--window-patches", type=int, help="split window side in patch sizes")
    parser.add_argument("--window-degrees", type=float, help="split window side in degrees")
    parser.add_argument("--time-block", type=int, help="steps per block (--split-mode time)")
    parser.add_argument("--check-leaks", action="store_true",
                        help="run the leak check after building (exit 1 on leaks)")
    add_cluster_flag(parser)
    parser.set_defaults(handler=run_build)


def index_config_from_args(args, config: SatflowConfig):
    """config.index with the build flags applied (validated)."""
    data = config.index.model_dump()
    for key in ("patch_size", "stride", "max_nodata_fraction", "min_feature_valid_fraction", "time_start", "time_end"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.bbox:
        data["bbox"] = dict(zip(("lat_min", "lat_max", "lon_min", "lon_max"), args.bbox))
    if args.per_feature:
        data["per_feature_columns"] = True
    split = data["split"]
    if args.fractions:
        split.update(zip(("train", "val", "test"), args.fractions))
    for key, flag in (("mode", "split_mode"), ("seed", "seed"), ("window_patches", "window_patches"),
                      ("window_degrees", "window_degrees"), ("time_block", "time_block")):
        if getattr(args, flag) is not None:
            split[key] = getattr(args, flag)
    return type(config.index).model_validate(data)


def run_build(args, config: SatflowConfig) -> int:
    from satflow.index.api import build_index_job

    index_config = index_config_from_args(args, config)
    result = build_index_job(args.store, args.out, index_config, config.cluster, choice=args.cluster)
    print(result.describe())
    if args.check_leaks:
        from satflow.index.summary import check_index_leaks

        report = check_index_leaks(args.out)
        print(report.describe())
        return 0 if report.ok else 1
    return 0


# --- summary / check-leaks ---------------------------------------------------------------------
def _summary(actions, common) -> None:
    parser = actions.add_parser("summary", parents=[common], help="summarise an index",
                                description="Store status, grid, parameters, rows per split and extras of an index.")
    parser.add_argument("index", type=Path, help="index file")
    parser.set_defaults(handler=run_summary)


def run_summary(args, config: SatflowConfig) -> int:
    from satflow.index.summary import summarize_index

    print(summarize_index(args.index))
    return 0


def _check_leaks(actions, common) -> None:
    parser = actions.add_parser(
        "check-leaks", parents=[common], help="report locations (shared pixels) or times in two splits",
        description="Rasterise each split's patch footprints and report pixels shared by two splits (space) "
        "and time steps in two splits (time). Exit status 1 when a leak is found.",
    )
    parser.add_argument("index", type=Path, help="index file")
    parser.add_argument("--mode", choices=["auto", "space", "time", "both"], default="auto",
                        help="what to check; auto: what the index's split mode promises")
    parser.set_defaults(handler=run_check_leaks)


def run_check_leaks(args, config: SatflowConfig) -> int:
    from satflow.index.summary import check_index_leaks

    report = check_index_leaks(args.index, args.mode)
    print(report.describe())
    return 0 if report.ok else 1


# --- derived indexes ---------------------------------------------------------------------------
def _derived(actions, common, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, parents=[common], help=help_text, description=description)
    parser.add_argument("index", type=Path, help="input index file")
    parser.add_argument("--out", required=True, type=Path, help="output index file (.parquet)")
    return parser


def _stratify(actions, common) -> None:
    parser = _derived(actions, common, "stratify", "add strata from a feature statistic or a label mask",
                      "Add stratum_value and stratum columns: quantile bins of a per-patch statistic of one "
                      "feature (reads that feature only), or of the labelled fraction of an external label mask.")
    parser.add_argument("--feature", help="feature for the statistic (index.stratify.feature), e.g. tmbrs-15")
    parser.add_argument("--statistic", help="min, max, mean, median or pNN (default p05)")
    parser.add_argument("--bins", type=int, help="number of quantile bins")
    parser.add_argument("--labels", help="NetCDF file or Zarr store of labels (time, lat, lon)")
    parser.add_argument("--label-var", help="label variable (or the feature of a satflow store)")
    parser.add_argument("--label-edges", nargs="+", type=float, help="bin edges of the labelled fraction")
    parser.add_argument("--store", help="store path, if it moved since the index was built")
    add_cluster_flag(parser)
    parser.set_defaults(handler=run_stratify)


def run_stratify(args, config: SatflowConfig) -> int:
    from satflow.index.api import stratify_index

    result = stratify_index(args.index, args.out, config.index.stratify, config.cluster, choice=args.cluster,
                            store=args.store, feature=args.feature, statistic=args.statistic, bins=args.bins,
                            labels=args.labels, label_variable=args.label_var, label_edges=args.label_edges)
    print(result.describe())
    return 0


def _sample(actions, common) -> None:
    parser = _derived(actions, common, "sample", "random or balanced (per stratum) sample of rows",
                      "Keep N rows per split (random baseline) or N rows per stratum and split (--balanced), "
                      "reproducibly from a seed.")
    parser.add_argument("--n", type=int, required=True, help="rows per split (or per stratum with --balanced)")
    parser.add_argument("--balanced", action="store_true", help="N per stratum (needs `stratify` first)")
    parser.add_argument("--by", default="stratum", help="stratum column for --balanced")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--all-splits", action="store_true", help="N overall instead of per split")
    parser.set_defaults(handler=run_sample)


def run_sample(args, config: SatflowConfig) -> int:
    from satflow.index.api import sample_index

    result = sample_index(args.index, args.out, args.n, seed=args.seed, balanced=args.balanced, by=args.by,
                          per_split=not args.all_splits)
    print(result.describe())
    return 0


def _triplets(actions, common) -> None:
    parser = _derived(actions, common, "triplets", "Tile2Vec triplets: anchor, neighbour, distant",
                      "Add neighbor_* (DISTANCE tiles away, random direction, same time and split) and distant_* "
                      "(same split, another time) columns to anchor rows; seeded and reproducible.")
    parser.add_argument("--distance", type=int, help="neighbour offset in tiles (index.triplets.distance)")
    parser.add_argument("--n-per-split", type=int, help="anchors per split (default: all)")
    parser.add_argument("--seed", type=int, help="triplet seed")
    parser.set_defaults(handler=run_triplets)


def run_triplets(args, config: SatflowConfig) -> int:
    from satflow.index.api import triplets_index

    options = config.index.triplets
    result = triplets_index(args.index, args.out, distance=args.distance or options.distance,
                            n_per_split=args.n_per_split or options.n_per_split,
                            seed=options.seed if args.seed is None else args.seed)
    print(result.describe())
    return 0


def _windows(actions, common) -> None:
    parser = _derived(actions, common, "windows", "time sequences per location (k consecutive, or best k of n)",
                      "Group rows into sequences of LENGTH time steps per location: contiguous, or the best LENGTH "
                      "of SPAN consecutive steps by valid fraction.")
    parser.add_argument("--length", type=int, help="steps per sequence (k)")
    parser.add_argument("--span", type=int, help="choose the best k of this many consecutive steps (n)")
    parser.add_argument("--step", type=int, help="start-to-start distance (default: span or length)")
    parser.add_argument("--min-valid", type=float, help="best-k-of-n: smallest member valid fraction")
    parser.set_defaults(handler=run_windows)


def run_windows(args, config: SatflowConfig) -> int:
    from satflow.index.api import windows_index

    options = config.index.windows.model_copy(update={k: v for k, v in {
        "length": args.length, "span": args.span, "step": args.step, "min_valid_frac": args.min_valid}.items()
        if v is not None})
    print(windows_index(args.index, args.out, options).describe())
    return 0


def _export(actions, common) -> None:
    parser = actions.add_parser(
        "export", parents=[common], help="indexed patches -> NPZ or GeoTIFF files",
        description="Write one file per index row: NPZ in the users' layout (X, M, feature_names, lat, lon, time, "
        "mean, std) or GeoTIFF (EPSG:4326, north up, NaN nodata; needs satflow[geotiff]), plus manifest.csv.",
    )
    parser.add_argument("index", type=Path, help="index file")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--format", choices=["npz", "geotiff"], default="npz", help="file format")
    parser.add_argument("--split", help="only rows of this split")
    parser.add_argument("--limit", type=int, help="at most this many rows")
    parser.add_argument("--feature", dest="features", action="append", help="feature to export (repeatable)")
    parser.add_argument("--group", dest="groups", action="append", metavar="NAME=PATTERN[,PATTERN]",
                        help="one file per row and group in OUT/NAME/, e.g. x='profiles/thetao-d*' (repeatable; "
                        "adds manifest.json)")
    parser.add_argument("--store", help="store path, if it moved since the index was built")
    parser.set_defaults(handler=run_export)


def _groups(specs: list[str] | None) -> dict[str, list[str]] | None:
    if not specs:
        return None
    groups = {}
    for spec in specs:
        name, _, patterns = spec.partition("=")
        if not name or not patterns:
            raise ValueError(f"--group {spec!r}: give NAME=PATTERN[,PATTERN], e.g. --group 'y=thetao-d*'")
        groups[name] = patterns.split(",")
    return groups


def run_export(args, config: SatflowConfig) -> int:
    from satflow.index.api import export_index

    print(export_index(args.index, args.out, args.format, split=args.split, limit=args.limit,
                       features=args.features, store=args.store, groups=_groups(args.groups)))
    return 0
