"""The order clips are seen in: a seeded permutation per epoch, global batches cut from it and split over
processes. The position is a function of the step, so a resumed run sees exactly what it would have seen."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from worldscape_ros.errors import TrainError


class ClipBatchSampler(Sampler[list[int]]):
    def __init__(self, dataset_len: int, batch_size: int, rank: int, world: int, seed: int, start_step: int,
                 total_steps: int) -> None:
        self.global_batch = batch_size * world
        if dataset_len < self.global_batch:
            raise TrainError(f'the dataset has {dataset_len} clips, fewer than one global batch of '
                             f'{self.global_batch} (batch_size {batch_size} x {world} processes)')
        self.dataset_len, self.batch_size, self.rank = dataset_len, batch_size, rank
        self.seed, self.start_step, self.total_steps = seed, start_step, total_steps
        self.per_epoch = dataset_len // self.global_batch  # the remainder of each epoch is dropped
        self._perm: tuple[int, torch.Tensor] | None = None

    def position(self, step: int) -> dict[str, int]:
        return {'epoch': step // self.per_epoch, 'batch_in_epoch': step % self.per_epoch,
                'dataset_len': self.dataset_len, 'global_batch': self.global_batch}

    def global_indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm = (epoch, torch.randperm(self.dataset_len, generator=g))
        return self._perm[1][k * self.global_batch:(k + 1) * self.global_batch].tolist()

    def indices(self, step: int) -> list[int]:
        """This process's share of the global batch of `step`."""
        return self.global_indices(step)[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.total_steps):
            yield self.indices(step)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)
