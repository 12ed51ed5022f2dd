"""The registry of source kinds: name -> the module of its reader and the rules on its own options.

Light on purpose (standard library only): `satflow.sources.options` checks `source.kind` against it
when a config loads, and `satflow.sources.base.get_source` imports a kind's reader module on first
use (also on workers), so no reader is imported up front. A new source kind is a change inside
`satflow.sources` only: its reader module (which calls `register_source(name, reader)`), one
`register_kind` below, and, when the kind has options of its own, their sub-section in `options.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OwnSection:
    """An optional `source.<name>` sub-section that its kind needs and that no other kind may set."""

    name: str  # e.g. "domain"
    role: str  # what it is, for errors: "the target grid"
    keys: str  # what it holds, for errors: "{central_latitude, ...}"


@dataclass(frozen=True)
class SourceKind:
    name: str
    reader: str  # module that registers the kind's reader (`register_source`) when imported
    description: str  # one line of the `source.kind` help
    own_sections: tuple[OwnSection, ...] = ()


SOURCE_KINDS: dict[str, SourceKind] = {}


def register_kind(kind: SourceKind) -> None:
    SOURCE_KINDS[kind.name] = kind


def registered_kinds() -> str:
    return ", ".join(sorted(SOURCE_KINDS))


def known_kind(name: str) -> str:
    """`name` if it is a registered kind; the error names the registered ones."""
    if name not in SOURCE_KINDS:
        raise ValueError(f"unknown source kind {name!r}; registered: {registered_kinds()}")
    return name


def kind_help() -> str:
    """The help of `source.kind`: every registered kind with its one line."""
    return "; ".join(f"{kind.name}: {kind.description}" for kind in SOURCE_KINDS.values())


def check_kind_options(source) -> None:
    """The kind of `source` (a SourceConfig) has each section it needs; no section of another kind is set."""
    for section in SOURCE_KINDS[source.kind].own_sections:
        if getattr(source, section.name) is None:
            raise ValueError(f"kind {source.kind} needs source.{section.name}: {section.keys}")
    for owner in SOURCE_KINDS.values():
        for section in owner.own_sections if owner.name != source.kind else ():
            if getattr(source, section.name) is not None:
                raise ValueError(f"source.{section.name} is {section.role} of kind {owner.name}, not of kind "
                                 f"{source.kind}: set kind: {owner.name} or remove {section.name}")


# --- the built-in kinds ------------------------------------------------------------------------
register_kind(SourceKind("gridded", "satflow.sources.gridded", "CF NetCDF on a regular lat/lon grid, one input per file"))
register_kind(SourceKind("swath", "satflow.sources.swath", "raw swaths binned per time window"))
register_kind(SourceKind(
    "regrid", "satflow.sources.regrid", "gridded or projected (CF grid_mapping) files resampled onto source.domain",
    own_sections=(OwnSection("domain", "the target grid", "{central_latitude, central_longitude, l_zonal, "
                             "l_meridional, resolution} (extents and resolution in metres)"),)))
register_kind(SourceKind("profiles", "satflow.sources.profiles", "EN4/Argo profile files rasterised per month onto a "
                         "depth axis (source.profiles)"))
