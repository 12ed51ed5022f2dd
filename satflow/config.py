"""Validated configuration: YAML files under configs/, overridable with `--set a.b.c=value`.

Each package owns its section model in its `options.py` (`cluster` in satflow.runtime, `sample` in
satflow.sources.samples, `ingest` in satflow.ingest with `ingest.source` in satflow.sources, `index`,
`codec`, `train` and `eval` in theirs). This module only loads YAML, applies `--set` overrides,
assembles `SatflowConfig` from those sections and turns pydantic's errors into messages that name
the file and the dotted key path. It imports no stage beyond those light `options` modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from satflow.codecs.options import CodecConfig
from satflow.compress.options import CompressConfig
from satflow.eval.options import EvalConfig
from satflow.index.options import IndexConfig
from satflow.ingest.options import IngestConfig
from satflow.options import Section
from satflow.runtime.options import ClusterConfig
from satflow.sources.samples.options import SampleConfig
from satflow.train.options import TrainConfig

# The section models are imported to assemble SatflowConfig, not re-exported: import them from their package.
__all__ = ["ConfigError", "SatflowConfig", "dump_config", "format_errors", "load_config", "parse_override"]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and key."""


class SatflowConfig(Section):
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    codec: CodecConfig = Field(default_factory=CodecConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)


def _set_path(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{key}' is a value, not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b.c=value` -> ('a.b.c', parsed YAML scalar/list)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set ingest.chunks.lat=128")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        return key, yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: value {raw!r} is not valid YAML ({err.__class__.__name__})") from err


def format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid configuration"]
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `satflow config` prints every key)"
        else:
            message = item["msg"]
            if "input" in item and not isinstance(item["input"], dict):
                message += f" (got {item['input']!r})"
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> SatflowConfig:
    """Read a YAML config (or the defaults), apply `--set` overrides, validate everything."""
    tree: dict = {}
    origin = "defaults"
    if path is not None:
        origin = str(path)
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from err
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections (cluster, ingest, ...)")
        tree = loaded or {}
    for text in overrides:
        key, value = parse_override(text)
        _set_path(tree, key, value)
    if overrides:
        origin += " with --set " + " ".join(overrides)
    try:
        return SatflowConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(format_errors(err, origin)) from None


def dump_config(config: SatflowConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
