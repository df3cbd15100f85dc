"""Determinism: one seed for the run, and an independent, reproducible stream per (epoch, purpose).

Every epoch reseeds its own streams from ``(seed, epoch, purpose)``, so a run resumed from the checkpoint of
epoch k draws exactly what the uninterrupted run drew in epoch k+1: resume does not change the result.
"""

from __future__ import annotations

import os
import random
import zlib

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this for deterministic matmuls on CUDA; harmless elsewhere.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        # warn_only: a few CUDA kernels (e.g. some pooling backward passes) have no deterministic version;
        # they warn instead of failing the run.
        torch.use_deterministic_algorithms(True, warn_only=True)


def stream_seed(seed: int, epoch: int, purpose: str) -> int:
    """A 63-bit seed for one purpose ("pairs", "shuffle", "dropout", ...) in one epoch."""
    tag = zlib.crc32(purpose.encode())
    return int(
        np.random.SeedSequence([seed % 2**32, epoch, tag]).generate_state(2, np.uint32).view(np.uint64)[0]
        >> 1
    )


def epoch_rng(seed: int, epoch: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(stream_seed(seed, epoch, purpose))


def seed_torch_for_epoch(seed: int, epoch: int) -> None:
    """Reseed torch's global generators (dropout, on-device augmentation) at the start of an epoch."""
    torch.manual_seed(stream_seed(seed, epoch, "torch"))
