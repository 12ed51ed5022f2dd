"""A checkpoint's context network, ready for errorbound(context="learned"): load it, give each block
a fixed-point predictor (`satflow.codecs.learned.context`).

Apart from `context` because it reads checkpoints, and checkpoints hold a `ContextNet`: the network
and its inference stay below the checkpoint format, the loading above it.
"""

from __future__ import annotations

import numpy as np

from satflow.codecs.learned.checkpoint import load_checkpoint
from satflow.codecs.learned.context import ContextNet, ContextPredictor, FixedPointNet, noise_inputs


class ContextModel:
    """The trained context network of a checkpoint, ready for fixed-point inference."""

    def __init__(self, path, net: ContextNet, mean: np.ndarray, std: np.ndarray, fingerprint: str) -> None:
        self.path, self.fingerprint = path, fingerprint
        self.mean, self.std = mean.astype(np.float64), std.astype(np.float64)
        self.net = FixedPointNet(net.state_dict())

    def noise_inputs(self, eps: np.ndarray, n_features: int) -> np.ndarray:
        """The noise level of each feature's inputs, as stored in the stream (int64)."""
        if n_features != self.net.n_features:
            raise ValueError(f"errorbound: the context network of {self.path} was trained on {self.net.n_features} "
                             f"features, the block has {n_features}")
        return noise_inputs(eps, self.std).astype(np.int64)

    def predictor(self, noise: np.ndarray) -> ContextPredictor:
        """A fresh predictor for one block (it caches that block's coded features)."""
        return ContextPredictor(self.net, self.mean, self.std, noise)


def load_context_model(inner, checkpoint: str | None) -> ContextModel:
    """The context network of `checkpoint`, or of the inner (learned) codec's checkpoint."""
    if checkpoint is None:
        if not hasattr(inner, "checkpoint"):
            raise ValueError(f"errorbound: context='learned' needs checkpoint=<dir> (inner {inner.name!r} has none); "
                             "train the network with `satflow train --stage context`")
        loaded = inner.checkpoint
    else:
        loaded = load_checkpoint(checkpoint)
    if loaded.context is None:
        raise ValueError(f"errorbound: checkpoint {loaded.path} has no context network; train one with "
                         f"`satflow train --stage context --resume {loaded.path}`")
    mean, std = loaded.meta.normalization()
    return ContextModel(loaded.path, loaded.context, mean, std, loaded.meta.context["fingerprint"])
