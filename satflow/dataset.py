"""PyTorch datasets over a store and its patch index: the index holds selectors, the dataset slices.

`PatchDataset` returns one patch per item as a dict:
- `x` float32 (feature, height, width): z-scored per feature with the store's statistics (when
  `normalize`), invalid cells set to `fill_value` after normalisation
- `mask` bool (feature, height, width): True where the value is valid
- `x_corrupt`, `mask_corrupt` (with `corruption`): the same with hidden cells removed
- `lat` (height,), `lon` (width,): cell-centre coordinates of the patch (before augmentation),
  `lat_c`, `lon_c` its centre, `time` (int64 ns since 1970; the ISO label for cftime calendars such
  as year-0 climatologies), `t` (store time index), `patch_id`
- on a local domain (a store ingested with `ingest.source.domain`): `lat`, `lon` are (height, width)
  from the 2-D coordinates, plus `y_m` (height,), `x_m` (width,) cell centres in metres and the
  patch bounds in metres `x_min_m`, `x_max_m`, `y_min_m`, `y_max_m` (from the index)

Named groups of features (`groups={"x": ["profiles/thetao-d*"], "y": ["thetao-d*"], "eo": ["ostia/*"]}`,
fnmatch patterns over the store's feature names, matched in store order) replace `x` and `mask` with,
per group `g`: `g` float32 (n_g, height, width) normalised and filled as `x`, `g_valid_mask` bool
(n_g, height, width), and `g_valid_mask_1d` bool (1, height, width): the columns where any feature of
the group is valid (a profile column with at least one observed level). `land_mask=FEATURE` (e.g. the
shallowest reanalysis level `thetao-d1`) adds `land_mask` bool (1, height, width), True over the sea
(where that feature is valid), False over land: one horizontal mask for every group, as DepthDif's.
Without `groups` the items are exactly as above.

Random choices (augmentation, corruption) are drawn from a generator seeded by (seed, the row's
identity, epoch), so an item is the same whichever worker loads it and in whatever order; call
`set_epoch` to vary them between epochs. The store is opened lazily in each worker process.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Subset

from satflow.index.corruption import corruption_mask
from satflow.index.io import METADATA_KEY, read_index, verify_store
from satflow.index.keys import frame_row_keys, mix
from satflow.index.projection import METRE_COLUMNS
from satflow.index.reader import PatchReader


def _load_frame(store, index, split) -> pd.DataFrame:
    if isinstance(index, pd.DataFrame):
        frame = index
        if METADATA_KEY in frame.attrs:
            verify_store(frame.attrs[METADATA_KEY], "index DataFrame", store)
    else:
        frame = read_index(index, store=store)
    if split is not None:
        wanted = [split] if isinstance(split, str) else list(split)
        frame = frame[frame["split"].isin(wanted)]
    if frame.empty:
        raise ValueError(f"index has no rows for split {split!r}; check `satflow index summary INDEX`")
    return frame.reset_index(drop=True)


def _augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random rot90 (and left-right flip) for every (..., height, width) array."""
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = []
    for array in arrays:
        array = np.rot90(array, turns, axes=(-2, -1))
        out.append(np.ascontiguousarray(array[..., ::-1] if flip else array))
    return out


class PatchDataset(Dataset):
    """Patches of a store selected by an index (path or DataFrame) for one split."""

    def __init__(self, store: str | Path, index: str | Path | pd.DataFrame, split: str | list[str] | None = "train",
                 features: list[str] | None = None, normalize: bool = True, augment: bool = False,
                 corruption: str | None = None, hidden_fraction: float = 0.5, seed: int = 0,
                 fill_value: float = 0.0, groups: dict[str, list[str]] | None = None, land_mask: str | None = None):
        if corruption is not None:
            corruption_mask(corruption, 2, 2, hidden_fraction, np.random.default_rng(0))  # validate early
        if corruption is not None and groups is not None:
            raise ValueError("corruption applies to `x`; with groups, hide cells of a group yourself from its "
                             "<group>_valid_mask (corruption_mask in satflow.index.corruption)")
        self.frame = _load_frame(store, index, split)
        self.groups = None
        if groups is None and land_mask is not None:
            raise ValueError("land_mask comes with groups: give groups={name: [patterns]} too")
        if groups is not None and features is not None:
            raise ValueError("give either features (one `x`) or groups (named feature groups), not both")
        if groups is not None:
            all_features = PatchReader(store).all_features
            self.groups = match_groups(groups or {}, all_features, store)
            if land_mask is not None and land_mask not in all_features:
                raise ValueError(f"land_mask: {store} has no feature {land_mask!r}; give the shallowest level of the "
                                 f"reanalysis, e.g. one of {[f for f in all_features if '/' not in f][:4]}")
            features = list(dict.fromkeys([f for names in self.groups.values() for f in names]
                                          + ([land_mask] if land_mask else [])))
        self.land_mask = land_mask
        self.reader = PatchReader(store, features)
        self.features = self.reader.features
        self._group_index = None if self.groups is None else {
            name: np.array([self.features.index(f) for f in names], np.int64) for name, names in self.groups.items()}
        stats = self.reader.statistics()
        self.mean = np.nan_to_num(stats["mean"], nan=0.0).astype(np.float32)
        std = np.nan_to_num(stats["std"], nan=1.0)
        self.std = np.where(std > 0, std, 1.0).astype(np.float32)
        self.normalize, self.augment, self.fill_value = normalize, augment, np.float32(fill_value)
        self.corruption, self.hidden_fraction, self.seed = corruption, hidden_fraction, seed
        self.epoch = 0
        # Plain arrays: cheap to pickle into workers and fast to index per item.
        self._rows = {name: self.frame[name].to_numpy() for name in ("t", "y0", "x0", "height", "width")}
        self._time = _item_times(self.frame["time"])
        self._patch_id = self.frame["patch_id"].to_numpy(dtype=object)
        self._centre = self.frame[["lat_c", "lon_c"]].to_numpy(np.float64)
        self._metre_bounds = None
        if self.reader.domain is not None:
            missing = [name for name in METRE_COLUMNS if name not in self.frame.columns]
            if missing:
                raise ValueError(f"the store {store} is on a local domain but the index has no {', '.join(missing)}: "
                                 f"rebuild it with `satflow index {store}`")
            self._metre_bounds = self.frame[list(METRE_COLUMNS)].to_numpy(np.float64)
        self._keys = frame_row_keys(self.frame, 0)

    def __len__(self) -> int:
        return len(self.frame)

    def set_epoch(self, epoch: int) -> None:
        """Draw new augmentations/corruptions (call before each epoch; workers copy it at start)."""
        self.epoch = int(epoch)

    def rng(self, i: int, salt: int = 0) -> np.random.Generator:
        """The random generator of item i (a function of seed, row identity, epoch and salt)."""
        return np.random.default_rng(int(mix(self.seed, self._keys[i], self.epoch, salt)))

    def load(self, t: int, y0: int, x0: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Normalised, filled values and validity (feature, height, width) of one patch."""
        x = self.reader.read(int(t), int(y0), int(x0), int(height), int(width))
        mask = np.isfinite(x)
        if self.normalize:
            x = (x - self.mean[:, None, None]) / self.std[:, None, None]
        return np.where(mask, x, self.fill_value).astype(np.float32), mask

    def _arrays(self, i: int, rng: np.random.Generator, position: dict | None = None) -> dict[str, np.ndarray]:
        rows = position or {name: values[i] for name, values in self._rows.items()}
        x, mask = self.load(rows["t"], rows["y0"], rows["x0"], rows["height"], rows["width"])
        arrays = {"x": x, "mask": mask} if self.groups is None else self._group_arrays(x, mask)
        if self.augment:
            arrays = dict(zip(arrays, _augment(list(arrays.values()), rng)))
        if self.corruption is not None:
            observed = corruption_mask(self.corruption, x.shape[1], x.shape[2], self.hidden_fraction, rng)
            arrays["mask_corrupt"] = arrays["mask"] & observed
            arrays["x_corrupt"] = np.where(arrays["mask_corrupt"], arrays["x"], self.fill_value).astype(np.float32)
        return arrays

    def _group_arrays(self, x: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        arrays = {}
        for name, index in self._group_index.items():
            arrays[name], arrays[f"{name}_valid_mask"] = x[index], mask[index]
            arrays[f"{name}_valid_mask_1d"] = mask[index].any(axis=0, keepdims=True)
        if self.land_mask is not None:
            arrays["land_mask"] = mask[self.features.index(self.land_mask)][None].copy()
        return arrays

    def __getitem__(self, i: int) -> dict:
        arrays = self._arrays(i, self.rng(i))
        t, y0, x0, height, width = (int(self._rows[name][i]) for name in ("t", "y0", "x0", "height", "width"))
        item = {name: torch.from_numpy(array) for name, array in arrays.items()}
        if self._metre_bounds is None:
            lat, lon = self.reader.coords(y0, x0, height, width)
            item.update(lat=torch.from_numpy(lat), lon=torch.from_numpy(lon))
        else:
            item.update({name: torch.from_numpy(values)
                         for name, values in self.reader.domain_coords(y0, x0, height, width).items()})
            item.update(zip(METRE_COLUMNS, map(float, self._metre_bounds[i])))
        item.update(lat_c=float(self._centre[i, 0]), lon_c=float(self._centre[i, 1]),
                    time=self._time[i].item() if self._time.dtype != object else self._time[i], t=t, patch_id=str(self._patch_id[i]))
        return item

    def denormalize(self, x):
        """Undo the z-score: x * std + mean per feature (feature axis = third from last)."""
        mean, std = self.mean[:, None, None], self.std[:, None, None]
        if isinstance(x, torch.Tensor):
            mean, std = torch.from_numpy(mean).to(x), torch.from_numpy(std).to(x)
        return x * std + mean

    def fixed_eval_sample(self, n: int, seed: int = 0) -> Subset:
        """A reproducible subset of n items (the same for the same index, split and seed)."""
        order = np.argsort(frame_row_keys(self.frame, seed), kind="stable")[: min(n, len(self))]
        return Subset(self, np.sort(order).tolist())


def match_groups(groups: dict[str, list[str]], features: list[str], store="the store") -> dict[str, list[str]]:
    """Group name -> the store's features its fnmatch patterns match (store order); each pattern must match one."""
    matched = {}
    for name, patterns in groups.items():
        if isinstance(patterns, str):
            patterns = [patterns]
        for pattern in patterns:
            if not fnmatch.filter(features, pattern):
                raise ValueError(f"groups.{name}: pattern {pattern!r} matches no feature of {store} "
                                 f"(features: {', '.join(features)})")
        matched[name] = [f for f in features if any(fnmatch.fnmatchcase(f, p) for p in patterns)]
    return matched


class TripletDataset(PatchDataset):
    """Anchor, neighbour and distant patches of an index with triplet columns (`satflow index triplets`)."""

    ROLES = ("anchor", "neighbor", "distant")

    def __init__(self, store, index, split="train", **kwargs):
        super().__init__(store, index, split, **kwargs)
        missing = [c for c in ("neighbor_y0", "distant_t") if c not in self.frame.columns]
        if missing:
            raise ValueError(f"index has no triplet columns {missing}; run `satflow index triplets` first")
        self._partners = {role: {name: self.frame[f"{role}_{name}"].to_numpy() for name in ("t", "y0", "x0")}
                          for role in self.ROLES[1:]}

    def __getitem__(self, i: int) -> dict:
        item = {}
        for salt, role in enumerate(self.ROLES):
            position = {"height": self._rows["height"][i], "width": self._rows["width"][i]}
            source = self._rows if role == "anchor" else self._partners[role]
            position.update({name: source[name][i] for name in ("t", "y0", "x0")})
            arrays = self._arrays(i, self.rng(i, salt), position)
            item.update({f"{role}_{name}": torch.from_numpy(array) for name, array in arrays.items()})
        item.update(patch_id=str(self._patch_id[i]), t=int(self._rows["t"][i]))
        return item


def _item_times(column) -> np.ndarray:
    """int64 ns since 1970 per row; ISO labels (str) for stores in calendars numpy cannot hold (cftime)."""
    if column.dtype.kind == "M":
        return column.to_numpy().astype("datetime64[ns]").astype(np.int64)
    return column.astype(str).to_numpy(dtype=object)


class SequenceDataset(PatchDataset):
    """Time sequences of an index with time-window columns (`satflow index windows`): x (time, feature, h, w)."""

    def __init__(self, store, index, split="train", **kwargs):
        super().__init__(store, index, split, **kwargs)
        if "sequence_id" not in self.frame.columns:
            raise ValueError("index has no sequence_id column; run `satflow index windows` first")
        ordered = self.frame.sort_values(["sequence_id", "sequence_pos"])
        self._sequences = [group.index.to_numpy() for _, group in ordered.groupby("sequence_id", sort=True)]

    def __len__(self) -> int:
        return len(self._sequences)

    def __getitem__(self, i: int) -> dict:
        members = self._sequences[i]
        # One generator per sequence: every step gets the same augmentation and corruption.
        items = [self._arrays(j, self.rng(int(members[0]))) for j in members]
        item = {name: torch.from_numpy(np.stack([a[name] for a in items])) for name in items[0]}
        times = self._time[members]
        item.update(time=torch.from_numpy(times.copy()) if times.dtype != object else list(times),
                    t=torch.from_numpy(self._rows["t"][members].astype(np.int64)),
                    patch_id=str(self._patch_id[members[0]]),
                    sequence_id=str(self.frame["sequence_id"].iloc[members[0]]))
        return item
