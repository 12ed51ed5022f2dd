"""Learned codecs: VAEformerLite with a hyperprior, registered as `vaeformer`.

Importing this package registers the codec (the codec registry imports it on first use).
"""

from satflow.codecs.learned.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from satflow.codecs.learned.codec import VAEformerCodec
from satflow.codecs.learned.model import ModelConfig, VAEformerLite

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ModelConfig",
    "VAEformerCodec",
    "VAEformerLite",
    "load_checkpoint",
    "save_checkpoint",
]
