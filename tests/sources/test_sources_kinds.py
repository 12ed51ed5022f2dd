"""The registry of source kinds: `source.kind` is checked against it, and each kind's own sections."""

from types import SimpleNamespace

import pytest

from satflow.config import ConfigError, load_config
from satflow.sources import kinds
from satflow.sources.base import get_source
from satflow.sources.kinds import OwnSection, SourceKind, check_kind_options, known_kind, register_kind


def test_builtin_kinds_are_registered():
    assert sorted(kinds.SOURCE_KINDS) == ["gridded", "profiles", "regrid", "swath"]
    assert kinds.SOURCE_KINDS["regrid"].reader == "satflow.sources.regrid"


def test_unknown_kind_names_the_registered_ones():
    with pytest.raises(ConfigError, match=r"ingest\.source\.kind: Value error, unknown source kind 'nope'; "
                                          r"registered: gridded, profiles, regrid, swath \(got 'nope'\)"):
        load_config(None, ["ingest.source.kind=nope"])
    with pytest.raises(ValueError, match="unknown source kind 'nope'; registered: gridded, profiles, regrid, swath"):
        known_kind("nope")


def test_reader_module_is_imported_on_first_use():
    assert type(get_source("swath")).__module__ == "satflow.sources.swath"


def test_a_kind_needs_its_own_section_and_others_refuse_it(monkeypatch):
    monkeypatch.setitem(kinds.SOURCE_KINDS, "radar", SourceKind(
        "radar", "satflow.sources.radar", "a test kind", own_sections=(OwnSection("site", "the radar site", "{name}"),)))
    with pytest.raises(ValueError, match=r"^kind radar needs source\.site: \{name\}$"):
        check_kind_options(SimpleNamespace(kind="radar", site=None, domain=None))
    with pytest.raises(ValueError, match=r"^source\.site is the radar site of kind radar, not of kind gridded: "
                                         r"set kind: radar or remove site$"):
        check_kind_options(SimpleNamespace(kind="gridded", site="x", domain=None))
    check_kind_options(SimpleNamespace(kind="radar", site="x", domain=None))


def test_register_kind_adds_it_to_the_help(monkeypatch):
    monkeypatch.setattr(kinds, "SOURCE_KINDS", dict(kinds.SOURCE_KINDS))
    register_kind(SourceKind("radar", "satflow.sources.radar", "volume scans"))
    assert kinds.kind_help().endswith("; radar: volume scans")
    assert known_kind("radar") == "radar"
