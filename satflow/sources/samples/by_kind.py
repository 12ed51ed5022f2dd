"""`write_sample`: the files a `sample:` config section asks for (`satflow sample KIND`)."""

from __future__ import annotations

from pathlib import Path

from satflow.sources.samples.profiles import write_profiles_sample
from satflow.sources.samples.writers import write_amsua_sample, write_amsua_swath_sample, write_ocean_sample


def write_sample(sample, out: Path) -> list[Path]:
    """Write the files of a `sample:` config section (kind, start, steps, resolution, seed) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if sample.kind == "amsua-swath":
        return write_amsua_swath_sample(out, start=sample.start, steps=sample.steps, seed=sample.seed)
    if sample.kind == "amsua":
        return write_amsua_sample(out, start=sample.start, steps=sample.steps, resolution=sample.resolution,
                                  seed=sample.seed)
    if sample.kind == "profiles":  # points, not a grid: resolution does not apply
        return write_profiles_sample(out, start=sample.start[:7], steps=sample.steps, seed=sample.seed)
    return write_ocean_sample(out, start=sample.start[:7], steps=sample.steps, resolution=sample.resolution,
                              seed=sample.seed)
