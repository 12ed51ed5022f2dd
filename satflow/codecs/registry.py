"""Codecs by name: `@register_codec("name")`, `get_codec(name, **params)`, `codec_from_container(data)`,
and `check_params(name, params)`: a spec checked against the class's parameter schema, nothing built.

Built-in codecs register themselves when their module is imported; the registry imports those
modules on first use (so `satflow.codecs.learned` can import this module without a cycle), plus any
third-party module declared under the `satflow.codecs` entry-point group.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import typing
from importlib.metadata import entry_points
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from satflow.codecs.base import Codec
from satflow.codecs.container import ContainerError, unpack_container

# Modules whose import registers codecs; a missing learned package just means no learned codecs.
BUILTIN_MODULES = ("satflow.codecs.classic", "satflow.codecs.errorbound")
# Imported only when a name is not found among the others: it imports torch (seconds per fresh
# worker process), which classic codecs never need.
LEARNED_MODULES = ("satflow.codecs.learned",)

_REGISTRY: dict[str, type[Codec]] = {}
_loaded: set[str] = set()

C = TypeVar("C", bound=type[Codec])


def register_codec(name: str):
    """Class decorator: make a Codec subclass available as `get_codec(name, ...)`."""

    def decorate(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Codec)):
            raise TypeError(f"@register_codec({name!r}) decorates Codec subclasses, not {cls!r}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"codec name {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_codec_modules(*, learned: bool = False) -> None:
    """Import the built-in codec modules (the learned ones only when asked) and entry points, once."""
    wanted = BUILTIN_MODULES + (LEARNED_MODULES if learned else ())
    for module in wanted:
        if module in _loaded:
            continue
        _loaded.add(module)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real missing dependency inside the module
                raise
    if "entry_points" not in _loaded:
        _loaded.add("entry_points")
        for entry in entry_points(group="satflow.codecs"):
            entry.load()


def codec_class(name: str) -> type[Codec]:
    """The registered class for `name` (ValueError listing the known names otherwise)."""
    _load_codec_modules()
    if name not in _REGISTRY:
        _load_codec_modules(learned=True)
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ValueError(f"unknown codec {name!r}; registered codecs: {known} (see `satflow codecs`)") from None


def get_codec(name: str, **params: Any) -> Codec:
    """Instantiate a registered codec, e.g. `get_codec("zfp", tol=0.1)`.

    Learned codecs take their resources the same way: `get_codec("<learned>", checkpoint="ckpt.pt")`.
    """
    cls = codec_class(name)
    _check_names(name, cls, params)
    return cls(**params)


def _check_names(name: str, cls: type[Codec], params: dict) -> None:
    """ValueError for a parameter the class does not take or a required one not given."""
    accepted = parameter_docs(cls)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        raise ValueError(
            f"codec {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(accepted) or 'none'}"
        )
    missing = [key for key, doc in accepted.items() if "default" not in doc and key not in params]
    if missing:
        raise ValueError(
            f"codec {name!r} needs parameter {', '.join(map(repr, missing))} "
            f"({'; '.join(accepted[key]['doc'] for key in missing)})"
        )


def check_params(name: str, params: dict) -> None:
    """Refuse what `get_codec(name, **params)` would, from the class alone: nothing is built.

    An unknown name, an unknown or missing parameter, or a value outside the parameter's type (its
    `__init__` annotation, or the class's `param_types`) raises ValueError naming it; the codec a
    class wraps (`Codec.wraps`) is checked the same way.
    """
    cls = codec_class(name)
    _check_names(name, cls, params)
    schema = parameter_schema(cls)
    for key, value in params.items():
        if key not in schema:
            continue
        annotation, adapter = schema[key]
        try:
            adapter.validate_python(value)
        except ValidationError as err:
            # Of a union's branches, the one that got furthest into the value explains best.
            reason = max(err.errors(), key=lambda e: len(e["loc"]))["msg"]
            raise ValueError(f"codec {name!r}: parameter {key!r} = {value!r} is invalid: "
                             f"{reason[:1].lower() + reason[1:]} (it takes {annotation})") from None
    inner = params.get(cls.wraps) if cls.wraps else None
    if isinstance(inner, str):
        check_params(inner, cls.wrapped_params(params))


@functools.lru_cache(maxsize=None)
def parameter_schema(cls: type[Codec]) -> dict[str, tuple[str, TypeAdapter]]:
    """Keyword parameter -> (its annotation as written, a validator of its values).

    The type is the class's `param_types` entry, else the `__init__` annotation; a parameter
    whose annotation cannot be resolved accepts anything.
    """
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):
        hints = {}
    schema = {}
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        kind = cls.param_types.get(param.name, hints.get(param.name, Any))
        written = param.annotation if isinstance(param.annotation, str) else getattr(kind, "__name__", str(kind))
        schema[param.name] = (written, TypeAdapter(kind, config=ConfigDict(arbitrary_types_allowed=True)))
    return schema


def codec_from_container(data: bytes, **context: Any) -> Codec:
    """The codec (with the recorded parameters) that wrote a container.

    `context` passes resources not stored in the stream, e.g. `checkpoint="model.pt"` for a
    learned codec; codecs that need none ignore it.
    """
    container = unpack_container(data)
    try:
        cls = codec_class(container.codec)
    except ValueError as err:
        raise ContainerError(f"container was written by codec {container.codec!r}, which is not available: {err}") from None
    return cls.from_container_params(container.params, **context)


def decode_any(data: bytes, **context: Any) -> tuple:
    """Decode a container whatever codec wrote it -> (x float32, mask uint8)."""
    return codec_from_container(data, **context).decode(data)


def parameter_docs(cls: type[Codec]) -> dict[str, dict[str, Any]]:
    """Keyword parameters of a codec class: {name: {"default": ..., "doc": ...}} (required: no default)."""
    docs: dict[str, dict[str, Any]] = {}
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        entry: dict[str, Any] = {"doc": cls.param_docs.get(param.name, "")}
        if param.default is not inspect.Parameter.empty:
            entry["default"] = param.default
        docs[param.name] = entry
    return docs


def available_codecs() -> dict[str, dict[str, Any]]:
    """Every registered codec: {name: {"description": str, "params": parameter_docs}}."""
    _load_codec_modules(learned=True)
    return {
        name: {"description": cls.description(), "params": parameter_docs(cls)}
        for name, cls in sorted(_REGISTRY.items())
    }
