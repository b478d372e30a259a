"""Where a run executes: one process by default, several under torchrun (DDP); the device, bf16 autocast on
CUDA, and activation checkpointing of the DiT blocks.

FSDP is not offered yet. FSDP2 (`fully_shard`) does run on CPU with gloo in torch 2.13 (a toy model trained and
gathered its full state dict on this project's machines), but wiring it in needs three changes not made yet: the
stages call the codec outside the wrapped forward (`register_fsdp_forward_method`), the EMA copy must be kept per
shard, and saves must gather weights and optimiser state on every rank before rank 0 writes (state.py)."""

from __future__ import annotations

import functools
import logging
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint

from worldscape_ros.errors import TrainError
from worldscape_ros.train.config import RunConfig

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    device: torch.device
    rank: int
    world: int
    dtype: torch.dtype  # autocast dtype (float32: no autocast)
    parallel: str  # 'single' or 'ddp'

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def wrap(self, objective: nn.Module) -> nn.Module:
        """Wrap a loss module (which owns the trained model) for data parallelism."""
        if self.parallel == 'ddp':
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == 'cuda' else None
            return DDP(objective, device_ids=ids, find_unused_parameters=True)
        return objective

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_mean(self, value: float) -> float:
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world


def setup_runtime(run: RunConfig) -> Runtime:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and start the process group if needed."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local = int(os.environ.get('LOCAL_RANK', '0'))
    if run.device == 'auto':
        device = torch.device(f'cuda:{local}' if torch.cuda.is_available() else 'cpu')
    else:
        device = torch.device(run.device)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise TrainError('run.device is cuda but no CUDA GPU is available')
        if device.type == 'cuda' and device.index is None:
            device = torch.device(f'cuda:{local}')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    if run.threads > 0:
        torch.set_num_threads(run.threads)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo', rank=rank, world_size=world)
    if run.precision == 'bf16' or (run.precision == 'auto' and device.type == 'cuda'):
        dtype = torch.bfloat16
    else:
        dtype = torch.float32
    parallel = 'single' if world == 1 else 'ddp'
    log.info('runtime: %s, rank %d of %d, %s, autocast %s', device, rank, world, parallel, dtype)
    return Runtime(device=device, rank=rank, world=world, dtype=dtype, parallel=parallel)


def teardown_runtime(rt: Runtime) -> None:
    if rt.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def enable_activation_checkpointing(blocks: nn.ModuleList) -> None:
    """Recompute each block's activations in backward (memory for compute); keeps parameter names unchanged."""
    for block in blocks:
        original = block.forward

        def forward(*args: Any, _f: Any = original, **kwargs: Any) -> Any:
            if not torch.is_grad_enabled():
                return _f(*args, **kwargs)
            return checkpoint(_f, *args, use_reentrant=False, **kwargs)

        block.forward = functools.update_wrapper(forward, original)
