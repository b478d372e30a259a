"""Where a run executes: one process by default, several under torchrun, replicated (DDP) or sharded (FSDP2,
`run.parallel: fsdp`); the device, bf16 autocast on CUDA, and activation checkpointing of the DiT blocks.

Under FSDP every trained, frozen and EMA model is sharded the same way (each DiT block, the rest of the DiT, the
codec, the heads: the modules the stages call), so the EMA update is a local op on each shard. Saves gather full
weights and optimiser state on every rank (rank 0 writes them), and a resume hands each rank the full state to
slice: a save is the same file whichever way the run that wrote it or the run that reads it was parallelised.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint

from worldscape_ros.errors import TrainError
from worldscape_ros.model.world_model import WorldModel
from worldscape_ros.train.config import RunConfig

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    device: torch.device
    rank: int
    world: int
    dtype: torch.dtype  # autocast dtype (float32: no autocast)
    parallel: str  # 'single', 'ddp' or 'fsdp'
    sharded: list[nn.Module] = field(default_factory=list)  # FSDP units, for reshard()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def wrap(self, objective: nn.Module) -> nn.Module:
        """Wrap a loss module (which owns the trained model) for data parallelism; under FSDP the sharded modules
        reduce their own gradients, so the loss module is used as it is."""
        if self.parallel == 'ddp':
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == 'cuda' else None
            return DDP(objective, device_ids=ids, find_unused_parameters=True)
        return objective

    def shard(self, *models: WorldModel) -> None:
        """FSDP2: shard each model in place, alike, on one device mesh (no-op unless parallel is 'fsdp'). Units
        are the modules whose forward or registered forward methods the stages call; WorldModel itself holds no
        parameters of its own."""
        if self.parallel != 'fsdp':
            return
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        # A block returns its un-rotated keys and values as views; nothing changes them in place (the cache
        # copies them), which is what FSDP2 warns about.
        warnings.filterwarnings('ignore', message=r'FSDP2-wrapped module .* returned a view tensor')
        mesh = init_device_mesh(self.device.type, (self.world,))
        for model in models:
            units: list[nn.Module] = [*model.dit.blocks, model.dit, model.codec]
            units += [h for h in (model.depth_head, model.gaussian_head) if h is not None]
            for unit in units:  # inner units first: each block, then the rest of the DiT
                fully_shard(unit, mesh=mesh)
            for method in ('encode', 'decode'):  # called directly, not through forward
                register_fsdp_forward_method(model.codec, method)
            self.sharded += units

    def reshard(self) -> None:
        """Free every unsharded FSDP parameter. A root unit (the DiT, the codec, a head) keeps its full weights
        after a forward for the backward it expects; one used only without gradient (the frozen codec, the teacher)
        would keep them for good, and the EMA update needs shards on both sides."""
        for unit in self.sharded:
            unit.reshard()  # type: ignore[operator]

    def full_model(self, model: WorldModel) -> WorldModel | None:
        """The model with full weights on CPU where rank 0 can write it; collective under FSDP (every rank calls,
        ranks other than 0 get None)."""
        if self.parallel != 'fsdp':
            return model if self.is_main else None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.is_main:
            return None
        full = WorldModel(model.config)
        full.load_state_dict(state)
        return full

    def optimizer_state(self, model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimiser's full state keyed by parameter name (collective under FSDP)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=self.parallel == 'fsdp')
        return get_optimizer_state_dict(model, opt, options=options)

    def load_model(self, model: nn.Module, state: dict[str, Any]) -> None:
        """Load a full state dict; each FSDP rank keeps its own shard of it."""
        if self.parallel != 'fsdp':
            model.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))

    def load_optimizer(self, model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        # strict=False: a trained parameter that never had a gradient (a head whose loss weight is 0) has no Adam
        # moments yet; that the save matches this run is the fingerprint's check
        set_optimizer_state_dict(model, opt, state, options=StateDictOptions(full_state_dict=True, strict=False))

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
    parallel = 'single' if world == 1 else ('fsdp' if run.parallel == 'fsdp' else 'ddp')
    if world == 1 and run.parallel == 'fsdp':
        log.info('run.parallel fsdp in a single process: nothing to shard, running unsharded')
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
