"""Sample data satflow generates (for the demo, the tests and the benchmarks), apart from the readers.

- `writers`: seeded NetCDF files shaped like real products: gridded AMSU-A, raw AMSU-A swaths and a
  monthly ocean reanalysis (`satflow sample`);
- `profiles`: EN4-like monthly in-situ profiles drawn from that same ocean;
- `synthetic`: the land, terrain and correlated weather fields they are drawn from;
- `orbits`: sun-synchronous polar orbiters and AMSU-A's scan geometry, for the swaths.
"""

from satflow.sources.samples.profiles import write_profiles_sample
from satflow.sources.samples.writers import (
    AMSUA_FILL,
    DEFAULT_SATELLITES,
    THETAO_FILL,
    write_amsua_sample,
    write_amsua_swath_sample,
    write_ocean_sample,
)

__all__ = ["AMSUA_FILL", "DEFAULT_SATELLITES", "THETAO_FILL", "write_amsua_sample", "write_amsua_swath_sample",
           "write_ocean_sample", "write_profiles_sample"]
