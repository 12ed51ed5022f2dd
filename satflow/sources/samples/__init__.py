"""Sample data satflow generates (for the demo, the tests and the benchmarks), apart from the readers.

- `writers`: seeded NetCDF files shaped like real products: gridded AMSU-A, raw AMSU-A swaths and a
  monthly ocean reanalysis;
- `profiles`: EN4-like monthly in-situ profiles drawn from that same ocean;
- `by_kind`: `write_sample` writes what a `sample:` config section asks (`satflow sample`);
- `synthetic`: the land, terrain and correlated weather fields they are drawn from;
- `orbits`: sun-synchronous polar orbiters and AMSU-A's scan geometry, for the swaths;
- `options`: the `sample:` config section.

The writers are imported lazily: loading a config imports `satflow.sources.samples.options`, and
that must not pull in numpy and netCDF4.
"""

from __future__ import annotations

from satflow.lazy import lazy_getattr

_EXPORTS = {name: "satflow.sources.samples.writers" for name in (
    "AMSUA_FILL", "DEFAULT_SATELLITES", "THETAO_FILL", "write_amsua_sample", "write_amsua_swath_sample",
    "write_ocean_sample")}
_EXPORTS["write_profiles_sample"] = "satflow.sources.samples.profiles"
_EXPORTS["write_sample"] = "satflow.sources.samples.by_kind"

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
