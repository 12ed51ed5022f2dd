"""A convml_tt `meta.yaml` (source, type, time, domain, sampling, aux_products) as a satflow config.

convml_tt describes a dataset in one `meta.yaml` and fetches or finds its files itself; satflow reads
local files named in `ingest.inputs`. `config_from_meta` maps every key it can onto satflow's config
and says what it cannot, by key and with what to do instead:

| meta.yaml                                   | satflow                                                     |
|---------------------------------------------|-------------------------------------------------------------|
| source: LES                                 | inputs `source_data/LES/*.nc` next to meta.yaml (or --input) |
| source: goes16                              | no download from S3: local ABI L2 MCMIP files via --input     |
| type: <composite>__<f1>__<f2> (LES)         | ingest.source.variables [f1, f2]                            |
| type: singlechannel__[bt_]N / multichannel__N__M / truecolor_rgb (goes16) | variables CMI_CNN (MCMIP) |
| time.t_start / t_end, time.intervals        | ingest.source.time_selection.intervals ([start, end))       |
| time.filters.N_hours_from_zenith            | time_selection.N_hours_from_zenith, solar_longitude = centre |
| domain.* and sampling.resolution            | ingest.source.kind regrid, ingest.source.domain             |
| sampling.triplets.tile_N                    | index.patch_size and index.stride                           |
| sampling.triplets.N_triplets                | index.split fractions (study -> test), index.triplets.n_per_split |
| aux_products.<name>                         | ingest.aux_products.<name> (inputs via --aux-input)          |
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from satflow.config import ConfigError, SatflowConfig, format_errors

_KNOWN_KEYS = {"source", "type", "time", "domain", "sampling", "aux_products"}
_SPLITS = {"train": "train", "val": "val", "validation": "val", "test": "test", "study": "test"}
_S3_HINT = ("satflow reads local files and does not download from Amazon S3: fetch the scenes first (for example "
            "`aws s3 cp --no-sign-request --recursive s3://noaa-goes16/ABI-L2-MCMIPF/2020/033/14/ goes16/`) and give "
            "them with --input 'goes16/*.nc'")
_GOES_BT_CHANNELS = range(7, 17)  # ABI's emissive channels: MCMIP stores them as brightness temperature (K)
_AUX_VARIABLES = {("goes16", "ACHA"): "HT"}  # the ABI L2 cloud-top height product's variable


class MetaError(ValueError):
    """A meta.yaml key cannot be mapped onto satflow's config; the message names the key and what to do."""


@dataclass
class MetaTranslation:
    config: dict  # the satflow config tree (what `satflow --config` reads)
    notes: list[str] = field(default_factory=list)  # how a key was interpreted where satflow differs

    def to_yaml(self, origin: str = "meta.yaml") -> str:
        header = [f"# satflow config translated from the convml_tt {origin} (satflow from-meta)"]
        header += [f"# note: {note}" for note in self.notes]
        return "\n".join(header) + "\n" + yaml.safe_dump(self.config, sort_keys=False)


def load_meta(path: str | Path) -> dict:
    try:
        meta = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise MetaError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise MetaError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(meta, dict):
        raise MetaError(f"{path}: a meta.yaml is a mapping with source, type, time, domain, sampling")
    return meta


def config_from_meta(meta: dict, *, inputs: list[str] | None = None, aux_inputs: dict[str, list[str]] | None = None,
                     base_dir: str | Path = ".") -> MetaTranslation:
    """Map a meta.yaml mapping onto a validated satflow config tree. `inputs` replace the files convml_tt
    would find or fetch; `aux_inputs` give each aux product's files. Raises MetaError."""
    unknown = sorted(set(meta) - _KNOWN_KEYS)
    if unknown:
        raise MetaError(f"meta.yaml: unknown key(s) {', '.join(unknown)}; satflow maps {', '.join(sorted(_KNOWN_KEYS))}")
    notes: list[str] = []
    source_name = _required(meta, "source")
    source: dict[str, Any] = {}
    variables = _variables(source_name, str(_required(meta, "type")), "type", notes)
    if variables:
        source["variables"] = variables
    domain = _domain(meta.get("domain"), meta.get("sampling") or {}, notes)
    source["kind"] = "regrid" if domain else "gridded"
    if domain:
        source["domain"] = domain
    selection = _time_selection(meta.get("time"), domain, source_name, notes)
    if selection:
        source["time_selection"] = selection
    ingest: dict[str, Any] = {"inputs": _inputs(source_name, inputs, Path(base_dir), notes),
                              "source": _ordered(source)}
    aux = _aux_products(meta.get("aux_products") or {}, aux_inputs or {}, notes)
    if aux:
        ingest["aux_products"] = aux
    tree: dict[str, Any] = {"ingest": ingest}
    index = _index(meta.get("sampling") or {}, domain, notes)
    if index:
        tree["index"] = index
    try:
        SatflowConfig.model_validate(tree)
    except ValidationError as err:  # e.g. a resolution that does not divide the domain: name the satflow keys
        raise MetaError(f"meta.yaml maps onto an invalid satflow config:\n"
                        f"{format_errors(err, 'the translated config')}") from None
    return MetaTranslation(tree, notes)


def translate_meta_file(path: str | Path, *, inputs: list[str] | None = None,
                        aux_inputs: dict[str, list[str]] | None = None) -> MetaTranslation:
    return config_from_meta(load_meta(path), inputs=inputs, aux_inputs=aux_inputs, base_dir=Path(path).parent)


# --- source and type ---------------------------------------------------------------------------
def _required(meta: dict, key: str):
    if meta.get(key) in (None, ""):
        raise MetaError(f"meta.yaml: `{key}` is required (e.g. source: LES, type: singlechannel__rlut)")
    return meta[key]


def _inputs(source_name: str, inputs: list[str] | None, base_dir: Path, notes: list[str]) -> list[str]:
    if inputs:
        return list(inputs)
    if source_name == "LES":
        notes.append("source LES: inputs are source_data/LES/*.nc next to meta.yaml, as convml_tt finds them")
        return [str(base_dir / "source_data" / "LES" / "*.nc")]
    if source_name == "goes16":
        raise MetaError(f"meta.yaml source: goes16 is fetched from S3 by convml_tt; {_S3_HINT}")
    raise MetaError(f"meta.yaml source: {source_name!r} is not a convml_tt source satflow knows (LES, goes16); "
                    "give its local NetCDF files with --input")


def _variables(source_name: str, kind: str, key: str, notes: list[str]) -> list[str]:
    """The variables a convml_tt `type` names."""
    if source_name == "goes16":
        return _goes16_variables(kind, key, notes)
    parts = kind.split("__")
    if len(parts) < 2 or not all(parts[1:]):
        raise MetaError(f"meta.yaml {key}: {kind!r} is not <composite_type>__<field>[__<field>...] "
                        "(e.g. singlechannel__rlut)")
    if parts[0] not in ("singlechannel", "multichannel"):
        notes.append(f"{key} {kind}: composite {parts[0]!r} is not built; the fields are stored as features")
    return parts[1:]


def _goes16_variables(kind: str, key: str, notes: list[str]) -> list[str]:
    notes.append(f"{key} {kind}: variables of the ABI L2 multichannel product (ABI-L2-MCMIPF/C, CMI_CNN); for "
                 "other GOES files set ingest.source.variables")
    if kind == "truecolor_rgb":
        notes.append(f"{key} truecolor_rgb: channels 1-3 (blue, red, veggie reflectance) are stored as three "
                     "features; satflow composes no RGB image")
        return ["CMI_C01", "CMI_C02", "CMI_C03"]
    match = re.fullmatch(r"(singlechannel|multichannel)((?:__(?:bt_)?\d{1,2})+)", kind)
    if match is None:
        raise MetaError(f"meta.yaml {key}: goes16 type {kind!r} is not truecolor_rgb, singlechannel__N or "
                        "multichannel__N__M (N a channel 1-16, optionally bt_N)")
    variables = []
    for part in match.group(2).split("__")[1:]:
        channel = int(part.removeprefix("bt_"))
        if not 1 <= channel <= 16:
            raise MetaError(f"meta.yaml {key}: ABI has channels 1-16, not {channel}")
        if part.startswith("bt_") and channel not in _GOES_BT_CHANNELS:
            raise MetaError(f"meta.yaml {key}: channel {channel} is reflective (1-6): it has no brightness "
                            "temperature; drop the bt_ prefix")
        variables.append(f"CMI_C{channel:02d}")
    if any(p.startswith("bt_") for p in match.group(2).split("__")[1:]):
        notes.append(f"{key}: MCMIP holds channels 7-16 as brightness temperature (K) already; bt_ needs no conversion")
    return variables


# --- domain and time -----------------------------------------------------------------------------
def _domain(domain: dict | None, sampling: dict, notes: list[str]) -> dict | None:
    if not domain:
        if "resolution" in sampling:
            notes.append("sampling.resolution applies to a domain; without one the files keep their own grid")
        return None
    domain = dict(domain)
    kind = domain.pop("kind", "rect")
    if kind != "rect":
        raise MetaError(f"meta.yaml domain.kind: {kind!r}: satflow resamples onto a rect (tangent-plane) domain only")
    keys = ("central_latitude", "central_longitude", "l_zonal", "l_meridional")
    missing = [k for k in keys if k not in domain]
    extra = sorted(set(domain) - set(keys))
    if missing or extra:
        raise MetaError(f"meta.yaml domain: needs {', '.join(keys)}" + (f"; missing {', '.join(missing)}" if missing
                        else "") + (f"; unknown {', '.join(extra)}" if extra else ""))
    if "resolution" not in sampling:
        raise MetaError("meta.yaml sampling.resolution: a domain needs the resolution in metres (e.g. 1000.0)")
    notes.append("domain: Lambert azimuthal equal-area around the centre (convml_tt's rect domain is a tangent "
                 "plane around the same centre; cells away from the centre differ slightly)")
    return {**{k: float(domain[k]) for k in keys}, "resolution": float(sampling["resolution"])}


def _iso(value, key: str) -> str:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise MetaError(f"meta.yaml {key}: {value!r} is not a time (e.g. 2020-02-02T14:00)")


def _time_selection(time: dict | None, domain: dict | None, source_name: str, notes: list[str]) -> dict:
    if not time:
        if source_name == "goes16":
            raise MetaError("meta.yaml time: goes16 data needs a time span (t_start, t_end or intervals)")
        return {}
    time = dict(time)
    filters = time.pop("filters", None) or {}
    if "intervals" in time:
        if {"t_start", "t_end"} & set(time):
            raise MetaError("meta.yaml time: give either t_start/t_end or intervals, not both")
        spans = time.pop("intervals")
        if not isinstance(spans, list) or not spans:
            raise MetaError("meta.yaml time.intervals: a list of {t_start, t_end}")
    else:
        spans = [{"t_start": time.pop("t_start", None), "t_end": time.pop("t_end", None)}]
    if time:
        raise MetaError(f"meta.yaml time: unknown key(s) {', '.join(sorted(time))} (t_start, t_end, intervals, filters)")
    intervals = []
    for k, span in enumerate(spans):
        where = "time" if len(spans) == 1 and "t_start" in span else f"time.intervals[{k}]"
        if not isinstance(span, dict) or set(span) != {"t_start", "t_end"}:
            raise MetaError(f"meta.yaml {where}: needs t_start and t_end")
        intervals.append({"start": _iso(span["t_start"], f"{where}.t_start"),
                          "end": _iso(span["t_end"], f"{where}.t_end")})
    notes.append("time: satflow intervals include t_start and exclude t_end")
    selection: dict[str, Any] = {"intervals": intervals}
    unknown = sorted(set(filters) - {"N_hours_from_zenith"})
    if unknown:
        raise MetaError(f"meta.yaml time.filters: {', '.join(unknown)} not supported (N_hours_from_zenith is; "
                        "ingest.source.time_selection.hours keeps hours of the day)")
    if "N_hours_from_zenith" in filters:
        selection["N_hours_from_zenith"] = float(filters["N_hours_from_zenith"])
        if domain:
            selection["solar_longitude"] = domain["central_longitude"]
        else:
            notes.append("N_hours_from_zenith without a domain: local noon at the centre of the files' longitudes")
    return selection


# --- sampling ----------------------------------------------------------------------------------
def _index(sampling: dict, domain: dict | None, notes: list[str]) -> dict:
    unknown = sorted(set(sampling) - {"resolution", "triplets"})
    if unknown:
        raise MetaError(f"meta.yaml sampling: unknown key(s) {', '.join(unknown)} (resolution, triplets)")
    triplets = sampling.get("triplets")
    if not triplets:
        return {}
    triplets = dict(triplets)
    index: dict[str, Any] = {}
    if "tile_N" in triplets:
        tile = int(triplets.pop("tile_N"))
        index.update(patch_size=tile, stride=tile)
        if domain:
            cells = (round(domain["l_meridional"] / domain["resolution"]), round(domain["l_zonal"] / domain["resolution"]))
            if tile > min(cells):
                notes.append(f"tile_N {tile}: satflow's patches are tile_N x tile_N cells of the store, larger than "
                             f"the domain's {cells[0]} x {cells[1]} cells, so `satflow index` finds none: lower tile_N "
                             "(index.patch_size) or sampling.resolution")
    counts = triplets.pop("N_triplets", None)
    splitting = triplets.pop("scene_collections_splitting", None)
    if triplets:
        raise MetaError(f"meta.yaml sampling.triplets: unknown key(s) {', '.join(sorted(triplets))} "
                        "(tile_N, N_triplets, scene_collections_splitting)")
    if counts:
        counts = counts if isinstance(counts, dict) else {"train": counts}
        bad = sorted(set(counts) - set(_SPLITS))
        if bad:
            raise MetaError(f"meta.yaml sampling.triplets.N_triplets: split(s) {', '.join(bad)} unknown; satflow "
                            "splits into train, val and test (study maps to test)")
        total = sum(int(n) for n in counts.values())
        fractions = {"train": 0.0, "val": 0.0, "test": 0.0}
        for name, n in counts.items():
            fractions[_SPLITS[name]] += int(n) / total
        largest = max(fractions, key=fractions.get)
        fractions[largest] = round(1.0 - sum(v for k, v in fractions.items() if k != largest), 12)
        index["split"] = {k: round(v, 12) for k, v in fractions.items()}
        index["triplets"] = {"n_per_split": max(int(n) for n in counts.values())}
        notes.append(f"N_triplets {dict(counts)}: split fractions in proportion (study -> test); satflow draws up to "
                     f"index.triplets.n_per_split = {index['triplets']['n_per_split']} anchors in every split")
    if splitting is not None:
        notes.append(f"scene_collections_splitting {splitting}: satflow splits by geographic window (index.split.mode "
                     "space) so that no location is in two splits")
    return index


# --- auxiliary products --------------------------------------------------------------------------
def _aux_products(products: dict, aux_inputs: dict[str, list[str]], notes: list[str]) -> dict:
    unknown_inputs = sorted(set(aux_inputs) - set(products))
    if unknown_inputs:
        raise MetaError(f"--aux-input {', '.join(unknown_inputs)}: no such aux product in meta.yaml "
                        f"({', '.join(products) or 'none'})")
    out = {}
    for name, product in products.items():
        where = f"aux_products.{name}"
        if not isinstance(product, dict) or "source" not in product or "type" not in product:
            raise MetaError(f"meta.yaml {where}: needs source and type")
        product = dict(product)
        source_name, kind = str(product.pop("source")), str(product.pop("type"))
        if name not in aux_inputs:
            hint = _S3_HINT.replace("--input 'goes16/*.nc'", f"--aux-input {name}=GLOB") if source_name == "goes16" \
                else f"give its local NetCDF files with --aux-input {name}=GLOB"
            raise MetaError(f"meta.yaml {where}: convml_tt fetches {source_name} {kind} itself; {hint}")
        variable = _AUX_VARIABLES.get((source_name, kind)) or kind.split("__")[-1]
        entry: dict[str, Any] = {"inputs": list(aux_inputs[name]), "source": {"variables": [variable]}}
        for key in ("scene_mapping_strategy", "dt_aux"):
            if key in product:
                entry[key] = product.pop(key)
        if product:
            raise MetaError(f"meta.yaml {where}: unknown key(s) {', '.join(sorted(product))}")
        notes.append(f"{where}: {source_name} {kind} read as variable {variable!r} (set "
                     f"ingest.aux_products.{name}.source.variables if your files name it otherwise)")
        out[name] = entry
    return out


def _ordered(source: dict) -> dict:
    order = ("kind", "variables", "domain", "time_selection")
    return {k: source[k] for k in order if k in source}


def parse_aux_inputs(items: list[str]) -> dict[str, list[str]]:
    """`NAME=GLOB` flags -> {name: [globs]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, pattern = item.partition("=")
        if not sep or not name or not pattern:
            raise ConfigError(f"--aux-input {item!r}: expected NAME=GLOB, e.g. --aux-input cloud_top_height_ceres='ceres/*.nc'")
        out.setdefault(name, []).append(pattern)
    return out
