"""Batches sliced from tensors already in memory: no per-sample `__getitem__`, no collate, no workers.

`TensorBatches` is a plain iterable Lightning accepts as a dataloader. Its `sampler` has `set_epoch`, which
Lightning calls at the start of every epoch, so shuffling depends on (seed, epoch) only: a resumed run sees
the same order. Under DDP each rank takes an equal-length, disjoint shard of the permutation.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class EpochPermutation:
    """Indices for one epoch: a permutation seeded by (seed, epoch), or 0..n-1; sharded across ranks."""

    def __init__(self, n: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.world_size)

    def indices(self) -> Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        if self.world_size == 1:
            return order
        # Pad by wrapping (as torch's DistributedSampler does) so every rank runs the same number of steps.
        padded = torch.cat([order, order[: len(self) * self.world_size - self.n]])
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())


class TensorBatches:
    """Yields (images, labels) batches by index slicing.

    With `resample=True` images hold pixel probabilities and every batch is a fresh Bernoulli draw
    (dynamic binarization), seeded by (seed, epoch, batch) for reproducibility.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        sampler: EpochPermutation,
        resample: bool = False,
    ) -> None:
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.sampler = sampler
        self.batch_sampler = None  # Lightning probes DataLoader-like attributes; batching is done here
        self.resample = resample

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.sampler.indices().to(self.images.device)
        generator = None
        if self.resample:
            generator = torch.Generator(self.images.device)
            generator.manual_seed(self.sampler.seed * 100_003 + self.sampler.epoch + 7_919 * self.sampler.rank)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            x = self.images.index_select(0, index)
            if self.resample:
                x = torch.bernoulli(x, generator=generator)
            yield x, self.labels.index_select(0, index)
