"""Codec specs: a codec as plain data (name + parameters) that travels to workers and is built there once.

A spec reads `name` or `name:key=value,key=value`, values parsed as YAML, so
`sz3:tol=0.5`, `errorbound:inner=constant,eps=[0.5,1.0]` and
`errorbound:inner=vaeformer,inner_params={qstep: 4},eps=0.5` all work (commas inside brackets or
braces belong to the value). Tasks receive specs, never codec objects: `build_codec` keeps the
codecs a worker process has built, so a learned model is loaded once per worker, not per task.
What a codec needs (a checkpoint, a device) is asked of its registered class, never of its name;
`CodecSpec.check` validates a spec against the class's parameter schema without building it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from dataclasses import dataclass, replace
from typing import Any

import yaml

from satflow.codecs.base import Codec

class CodecSpecError(ValueError):
    """A codec spec that cannot be parsed or built; the message names the spec."""


@dataclass(frozen=True)
class CodecSpec:
    """A registered codec's name and its keyword parameters (JSON-able).

    `checkpoint` and `device` are run-level resources, not settings: they reach the codec when it
    is built but stay out of the spec's text and folder name, so `vaeformer:qstep=1` reads the same
    whichever checkpoint a run passes (the manifest records that).
    """

    name: str
    params_json: str = "{}"  # canonical JSON, so specs hash and compare by value
    checkpoint: str | None = None
    device: str | None = None

    @classmethod
    def of(cls, name: str, params: dict | None = None) -> CodecSpec:
        return cls(name, json.dumps(params or {}, sort_keys=True))

    @classmethod
    def parse(cls, text: str | dict | CodecSpec) -> CodecSpec:
        """From `name[:key=value,...]`, a `{name: ..., params: {...}}` mapping, or a spec."""
        if isinstance(text, CodecSpec):
            return text
        if isinstance(text, dict):
            unknown = set(text) - {"name", "params"}
            if "name" not in text or unknown:
                raise CodecSpecError(f"codec spec {text!r}: a mapping needs 'name' and optional 'params', nothing else")
            return cls.of(str(text["name"]), dict(text.get("params") or {}))
        name, _, rest = str(text).strip().partition(":")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise CodecSpecError(f"codec spec {text!r}: expected NAME or NAME:KEY=VALUE,..., e.g. sz3:tol=0.5")
        params = {}
        for item in _split_top_level(rest) if rest.strip() else []:
            key, equals, raw = item.partition("=")
            if not equals or not key.strip():
                raise CodecSpecError(f"codec spec {text!r}: {item!r} is not KEY=VALUE (e.g. sz3:tol=0.5)")
            try:
                params[key.strip()] = parse_value(raw)
            except yaml.YAMLError as err:
                raise CodecSpecError(f"codec spec {text!r}: value of {key.strip()!r} is not valid YAML ({err})") from None
        return cls.of(name, params)

    @property
    def params(self) -> dict:
        """The parameters the spec states (without run-level resources)."""
        return json.loads(self.params_json)

    def __str__(self) -> str:
        params = self.params
        if not params:
            return self.name
        return f"{self.name}:" + ",".join(f"{key}={_compact(value)}" for key, value in params.items())

    @property
    def folder(self) -> str:
        """A file-system-safe folder name for this spec's outputs (readable, unique per spec)."""
        text = re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", str(self).replace(":", "-"))
        return text if len(text) <= 80 else f"{text[:60]}-{_digest(str(self))}"

    @property
    def is_learned(self) -> bool:
        """Whether the codec (or the codec it wraps) runs a network (a GPU helps it); asked of the classes."""
        from satflow.codecs.registry import codec_class

        cls = codec_class(self.name)
        inner = self.params.get(cls.wraps) if cls.wraps else None
        return cls.uses_device or (isinstance(inner, str) and codec_class(inner).uses_device)

    def with_checkpoint(self, checkpoint: str | None) -> CodecSpec:
        """This spec with a run-level checkpoint for the codecs that need one and name none."""
        return replace(self, checkpoint=str(checkpoint)) if checkpoint else self

    def with_device(self, device: str) -> CodecSpec:
        """This spec with its network (if any) on `device`."""
        return replace(self, device=device)

    def build_params(self) -> dict:
        """The keyword parameters the codec is built with: the stated ones plus the resources it uses."""
        return _with_resources(self.name, self.params, self.checkpoint, self.device)

    def check(self) -> CodecSpec:
        """This spec, checked against its codec's parameter schema without building the codec.

        Raises CodecSpecError naming the spec (unknown codec, unknown, missing or ill-typed parameter).
        """
        from satflow.codecs.registry import check_params

        try:
            check_params(self.name, self.build_params())
        except (ValueError, TypeError) as err:
            raise CodecSpecError(f"codec spec {str(self)!r}: {err}") from None
        return self

    def checkpoint_paths(self) -> list[str]:
        """Every checkpoint the codec (and a codec it wraps) is built with."""
        return _checkpoints(self.build_params())

    def worker_plugins(self) -> set[str]:
        """The worker plugins (`Codec.worker_plugin`) of the codec and of a codec it wraps."""
        from satflow.codecs.registry import codec_class

        found, name, params = set(), self.name, self.build_params()
        while name is not None:
            cls = codec_class(name)
            found |= {cls.worker_plugin} if cls.worker_plugin else set()
            name, params = (params.get(cls.wraps), cls.wrapped_params(params)) if cls.wraps else (None, None)
        return found

    def build(self) -> Codec:
        """This process's instance of the codec (built on first use, then reused)."""
        return build_codec(self)


def _with_resources(name: str, params: dict, checkpoint: str | None, device: str | None) -> dict:
    """`params` plus the run-level resources the codec's class declares it takes (and states none of).

    A wrapper whose inner codec takes resources passes them on to the inner codec's parameters.
    """
    from satflow.codecs.registry import codec_class

    cls = codec_class(name)
    inner = params.get(cls.wraps) if cls.wraps else None
    inner_cls = codec_class(inner) if isinstance(inner, str) else None
    if inner_cls is not None and (inner_cls.needs_checkpoint or inner_cls.uses_device):
        key = f"{cls.wraps}_params"
        params[key] = _with_resources(inner, dict(params.get(key) or {}), checkpoint, device)
    elif cls.takes_checkpoint(params):
        _fill(params, checkpoint=checkpoint)
    if cls.uses_device:
        _fill(params, device=device)
    return params


def _checkpoints(params: dict) -> list[str]:
    found = [str(params["checkpoint"])] if params.get("checkpoint") else []
    return found + [path for value in params.values() if isinstance(value, dict) for path in _checkpoints(value)]


def _fill(params: dict, **resources: str | None) -> dict:
    """Add each given resource the parameters do not already state."""
    for key, value in resources.items():
        if value is not None:
            params.setdefault(key, value)
    return params


@functools.lru_cache(maxsize=16)
def build_codec(spec: CodecSpec) -> Codec:
    """Build a codec from its spec, once per process; errors name the spec."""
    from satflow.codecs.registry import get_codec

    try:
        return get_codec(spec.name, **spec.build_params())
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise CodecSpecError(f"codec spec {str(spec)!r}: {err}") from None


def parse_value(raw: str) -> Any:
    """A parameter value as YAML, plus what YAML 1.1 leaves as text: `1e-2` (a number), `none` (None)."""
    value = yaml.safe_load(raw) if raw.strip() else None
    if isinstance(value, str):
        if value.lower() == "none":
            return None
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets, braces or quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]
