"""The registered `vaeformer` codec: VAEformerLite + hyperprior with real range-coded streams.

Blocks are normalised per feature with the checkpoint's store statistics, invalid points set to 0
(the mask is a second input channel), padded (replicate) to a multiple of the model's total
downsampling and cropped back after decoding; outputs are de-normalised to physical units
without clamping. The container header records the weights fingerprint, so a stream can only be
decoded with the checkpoint that wrote it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge
from torch.nn import functional as F

from satflow.codecs.base import Codec, PositiveNumber
from satflow.codecs.container import Container, ContainerError
from satflow.codecs.learned.checkpoint import load_checkpoint
from satflow.codecs.learned.coding import LatentCoder
from satflow.codecs.registry import register_codec

# Normalised inputs are clipped here: absurd values (1e30 K) would otherwise overflow the network.
# The lossy reconstruction of such points is poor either way; the error-bounded wrapper fixes them.
NORMALISED_LIMIT = 1e4


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device; use device='cpu'")
    return resolved


def pad_to_multiple(x: torch.Tensor, mask: torch.Tensor, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (B, F, H, W) values by edge replication and the mask with zeros (padding is invalid)."""
    pad_h, pad_w = -x.shape[2] % multiple, -x.shape[3] % multiple
    if not (pad_h or pad_w):
        return x, mask
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate"), F.pad(mask, (0, pad_w, 0, pad_h))


@register_codec("vaeformer")
class VAEformerCodec(Codec):
    """Learned VAEformerLite transform codec with a hyperprior (a checkpoint from `satflow train`)."""

    param_docs = {
        "checkpoint": "checkpoint directory written by `satflow train` (or its --out directory: uses last/)",
        "device": "torch device for the transforms: cpu, cuda, cuda:N or auto",
        "qstep": "latent quantisation step (1 = as trained; larger = fewer bits, more error)",
        "batch_size": "blocks per forward pass",
    }
    param_types = {"qstep": PositiveNumber, "batch_size": Annotated[int, Ge(1)]}
    needs_checkpoint = True
    uses_device = True

    def __init__(self, *, checkpoint: str, device: str = "cpu", qstep: float = 1.0, batch_size: int = 16) -> None:
        qstep, batch_size = float(qstep), int(batch_size)
        if not np.isfinite(qstep) or qstep <= 0:
            raise ValueError(f"vaeformer: qstep must be a positive number, got {qstep!r}")
        if batch_size < 1:
            raise ValueError(f"vaeformer: batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.checkpoint = load_checkpoint(checkpoint, device=self.device)
        model = self.checkpoint.model
        if not (model.entropy_bottleneck.has_tables and model.gaussian.has_tables):
            raise ValueError(f"{self.checkpoint.path}: checkpoint has no coding tables (saved before model.update())")
        self.coder = LatentCoder(model, self.device)
        self.mean, self.std = self.checkpoint.meta.normalization()
        self.qstep, self.batch_size = qstep, batch_size
        super().__init__(checkpoint=str(checkpoint), device=device, qstep=qstep, batch_size=batch_size)

    # --- identity ------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return self.checkpoint.meta.fingerprint

    @property
    def features(self) -> list[str]:
        return list(self.checkpoint.meta.features)

    def container_params(self) -> dict:
        # No local path in the stream: the weights fingerprint identifies the model.
        return {"fingerprint": self.fingerprint, "n_features": len(self.features), "qstep": self.qstep}

    @classmethod
    def from_container_params(cls, params: dict, **context: Any) -> VAEformerCodec:
        checkpoint = context.get("checkpoint")
        if not checkpoint:
            raise ContainerError(
                f"container was written by the learned codec 'vaeformer' (weights fingerprint "
                f"{params.get('fingerprint')}); pass checkpoint=<the checkpoint that encoded it> to decode it "
                "(`satflow decode --checkpoint DIR`)"
            )
        codec = cls(checkpoint=checkpoint, device=context.get("device", "cpu"), qstep=params.get("qstep", 1.0))
        codec.check_params(params)
        return codec

    def check_params(self, params: dict) -> None:
        """ContainerError unless `params` were written by this checkpoint."""
        if params.get("fingerprint") != self.fingerprint:
            raise ContainerError(
                f"container was encoded with weights fingerprint {params.get('fingerprint')}, but checkpoint "
                f"{self.checkpoint.path} has {self.fingerprint}; decode with the checkpoint that encoded it"
            )

    def check_container(self, container: Container) -> None:
        if container.codec == self.name:
            self.check_params(container.params)
        super().check_container(container)

    # --- batched payload hooks -----------------------------------------------------------------
    def encode_payload(self, x: np.ndarray, mask: np.ndarray) -> bytes:
        return self.encode_payloads([x], [mask])[0]

    def decode_payload(self, payload: bytes, mask: np.ndarray) -> np.ndarray:
        return self.decode_payloads([payload], [mask])[0]

    def encode_payloads(self, xs: list[np.ndarray], masks: list[np.ndarray]) -> list[bytes]:
        payloads: list[bytes] = [b""] * len(xs)  # an all-invalid block needs no payload at all
        for shape, items in self._batches(masks):
            x = torch.from_numpy(np.stack([self._normalise(xs[i], masks[i]) for i in items]))
            mask = torch.from_numpy(np.stack([masks[i] for i in items]).astype(np.float32))
            x, mask = pad_to_multiple(x, mask, self.checkpoint.model.config.downsampling)
            for i, payload in zip(items, self.coder.compress(x, mask, self.qstep)):
                payloads[i] = payload
        return payloads

    def decode_payloads(self, payloads: list[bytes], masks: list[np.ndarray]) -> list[np.ndarray]:
        out = [np.zeros(m.shape, np.float32) for m in masks]
        for (f, h, w), items in self._batches(masks):
            mask = torch.from_numpy(np.stack([masks[i] for i in items]).astype(np.float32))
            _, padded_mask = pad_to_multiple(mask, mask, self.checkpoint.model.config.downsampling)
            x = self.coder.decompress([payloads[i] for i in items], padded_mask, self.qstep).numpy()
            for i, values in zip(items, x[:, :, :h, :w]):
                out[i] = values * self.std[:, None, None] + self.mean[:, None, None]
        return out

    def _batches(self, masks: list[np.ndarray]):
        """(shape, indices) groups of same-shape blocks with any valid point, at most batch_size each."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, mask in enumerate(masks):
            self._check_features(mask.shape)
            if mask.any():
                groups[tuple(mask.shape)].append(i)
        for shape, items in groups.items():
            for start in range(0, len(items), self.batch_size):
                yield shape, items[start : start + self.batch_size]

    def _check_features(self, shape: tuple[int, ...]) -> None:
        if shape[0] != len(self.features):
            raise ValueError(
                f"block has {shape[0]} features, checkpoint {self.checkpoint.path} was trained on "
                f"{len(self.features)}: {', '.join(self.features)}"
            )

    def _normalise(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        z = (x - self.mean[:, None, None]) / self.std[:, None, None]
        z = np.where(mask != 0, z, np.float32(0.0))
        return np.clip(z, -NORMALISED_LIMIT, NORMALISED_LIMIT).astype(np.float32)
