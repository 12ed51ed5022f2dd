"""Spatial corruption masks for reconstruction tasks: which cells of a patch stay observed.

`tracks` imitates an instrument moving through the patch (a ship, a float, an along-track
sounder): curved random walks, sampled at one point every 2-8 cells, started again from a random
cell whenever a walk leaves the patch, until exactly `1 - hidden_fraction` of the cells are
observed. `rectangles` hides random boxes until at least `hidden_fraction` is hidden.
Both return a boolean (height, width) mask that is True where a cell stays observed; one mask is
shared by every feature, as in the users' existing pipelines.
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("tracks", "rectangles")


def random_walks(height: int, width: int, rng: np.random.Generator, n: int, turn_std: float,
                 stride: tuple[int, int]) -> np.ndarray:
    """Flat cell indices sampled along `n` curved walks (one point every 2-8 cells), walk by walk."""
    steps = height + width  # long enough to cross the patch; most walks leave it sooner
    heading = rng.uniform(0, 2 * np.pi, (n, 1)) + np.cumsum(rng.normal(0.0, turn_std, (n, steps)), axis=1)
    start = rng.uniform((0.0, 0.0), (height, width), (n, 2))
    y = np.concatenate([start[:, :1], start[:, :1] + np.cumsum(np.sin(heading), axis=1)], axis=1)
    x = np.concatenate([start[:, 1:], start[:, 1:] + np.cumsum(np.cos(heading), axis=1)], axis=1)
    # A walk ends where it first leaves the patch; a new one starts elsewhere.
    alive = np.cumprod((y >= 0) & (y < height) & (x >= 0) & (x < width), axis=1).astype(bool)
    every = rng.integers(stride[0], stride[1] + 1, (n, 1))
    position = np.arange(steps + 1)[None, :]
    alive &= (position - rng.integers(0, every)) % every == 0
    cells = np.floor(y[alive]).astype(np.int64) * width + np.floor(x[alive]).astype(np.int64)
    return cells  # row-major: walk 0's points in order, then walk 1's, ...


def track_mask(height: int, width: int, hidden_fraction: float, rng: np.random.Generator, *,
               stride: tuple[int, int] = (2, 8), turn_std: float = 0.15, batch: int = 64,
               max_batches: int = 200) -> np.ndarray:
    """Observed cells along thinned curved tracks; exactly round((1 - hidden) * cells) observed."""
    target = int(round((1.0 - hidden_fraction) * height * width))
    observed = np.zeros(height * width, dtype=bool)
    count = 0
    for _ in range(max_batches):
        if count >= target:
            break
        points = random_walks(height, width, rng, batch, turn_std, stride)
        _, first = np.unique(points, return_index=True)
        fresh = points[np.sort(first)]
        fresh = fresh[~observed[fresh]][: target - count]
        observed[fresh] = True
        count += fresh.size
    if count < target:  # only for tiny hidden fractions: tracks can no longer find free cells
        free = np.flatnonzero(~observed)
        observed[rng.choice(free, target - count, replace=False)] = True
    return observed.reshape(height, width)


def rectangle_mask(height: int, width: int, hidden_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Observed cells outside random rectangles (sides 1/8 to 1/2 of the patch) hiding >= the target."""
    hidden = np.zeros((height, width), dtype=bool)
    target = hidden_fraction * height * width
    while hidden.sum() < target:
        h = int(rng.integers(max(1, height // 8), max(1, height // 2) + 1))
        w = int(rng.integers(max(1, width // 8), max(1, width // 2) + 1))
        y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        hidden[y:y + h, x:x + w] = True
    return ~hidden


def corruption_mask(strategy: str, height: int, width: int, hidden_fraction: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Observed-cell mask for a named strategy ('tracks' or 'rectangles')."""
    if not 0.0 <= hidden_fraction <= 1.0:
        raise ValueError(f"hidden_fraction must be in [0, 1] (got {hidden_fraction})")
    if strategy == "tracks":
        return track_mask(height, width, hidden_fraction, rng)
    if strategy == "rectangles":
        return rectangle_mask(height, width, hidden_fraction, rng)
    raise ValueError(f"unknown corruption {strategy!r}; choose one of {', '.join(STRATEGIES)}")
