"""Training the output refiner on what the engine itself makes.

1. trace: the streaming engine (the same code as live, its scene memory committing what it imagines when its
   config does) is reset on each episode's true start frame and depth (and the start hand), stepped through the
   episode's true cameras and hand keypoints, and its refiner inputs are recorded beside the true frames, made
   as `refiner.imagined` makes them live.
2. fit: the refiner learns to turn those inputs into the true frame. The loss weighs the holes and the hand's
   region, where everything the refiner adds is decided, and matches image gradients there, so the fill
   carries structure instead of the blur an L1 alone rewards.

Traces are uint8 shards (every input channel lies in [0, 1]); a fit saves its refiner and Adam state as
safetensors every `save_every` steps and resumes from the newest save.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from worldscape_ros.errors import TrainError
from worldscape_ros.fileio import atomic_path
from worldscape_ros.model.checkpoint import save_checkpoint
from worldscape_ros.model.config import RefinerConfig
from worldscape_ros.model.engine import WorldEngine
from worldscape_ros.model.refiner import HAND_COLOUR_CHANNELS, IN_CHANNELS, Refiner, refine
from worldscape_ros.train.engine_traces import pending_shards, replay
from worldscape_ros.train.patch_critic import PatchCritic, critic_loss, generator_loss

log = logging.getLogger(__name__)


# ---- 1. trace --------------------------------------------------------------------------------------------------
def trace_episodes(engine: WorldEngine, episodes: list[Path], out: Path, frames: int) -> int:
    """Write one shard per episode (skipping shards already written); return the samples written now."""
    written = 0
    for ep, shard in pending_shards(episodes, out, '.trace.npz'):
        inputs: list[torch.Tensor] = []
        hands: list[torch.Tensor] = []

        def record(x: torch.Tensor, dynamic: torch.Tensor, into: list = inputs, hand: list = hands) -> None:
            into.append(x.cpu())
            hand.append(dynamic.cpu())

        engine.trace = record
        try:
            T = len(replay(engine, ep, frames))
        finally:
            engine.trace = None
        x = torch.cat(inputs)  # (T - 1, IN_CHANNELS, H, W)
        hand = torch.cat(hands).numpy()  # (T - 1, H, W): the region the engine left to the refiner for the hand
        with atomic_path(shard) as tmp, open(tmp, 'wb') as f:
            np.savez(f, inputs=(x.clamp(0, 1) * 255).round().byte().numpy(), target=ep.rgb[1:T], hand=hand)
        written += T - 1
    return written


class Traces:
    """All shards of a folder in memory: inputs (N, C, H, W) uint8, targets (N, 3, H, W) uint8, hand (N, H, W).

    Samples whose render covers less than `min_coverage` of the view are left out: live, the scene memory holds
    what was imagined before, so a step reveals a strip beside known content, never a view with nothing known.
    """

    def __init__(self, folders: list[Path], min_coverage: float = 0.0) -> None:
        shards = sorted(p for folder in folders for p in folder.glob('*.trace.npz'))
        if not shards:
            raise TrainError(f'no *.trace.npz shards in {", ".join(map(str, folders))}: run the trace first')
        xs, ys, hs = [], [], []
        for p in shards:
            with np.load(p) as z:
                xs.append(z['inputs'])
                ys.append(z['target'])
                hs.append(z['hand'])
        self.inputs = torch.from_numpy(np.concatenate(xs))
        self.target = torch.from_numpy(np.concatenate(ys)).permute(0, 3, 1, 2).contiguous()
        self.hand = torch.from_numpy(np.concatenate(hs))
        coverage = self.inputs[:, 3].float().mean((1, 2)) / 255  # (N,)
        keep = coverage >= min_coverage
        self.inputs, self.target, self.hand = self.inputs[keep], self.target[keep], self.hand[keep]
        if not len(self.inputs):
            raise TrainError(f'no trace sample covers at least {min_coverage:.0%} of its view')
        if self.inputs.shape[1] not in (IN_CHANNELS, IN_CHANNELS + HAND_COLOUR_CHANNELS):
            raise TrainError(f'traces have {self.inputs.shape[1]} input channels; a refiner takes {IN_CHANNELS} '
                             f'or, reading the hand colour, {IN_CHANNELS + HAND_COLOUR_CHANNELS}')
        self.shards = len(shards)

    def to(self, device: torch.device | str) -> Traces:
        """Every sample moved to `device` (still uint8): a fit on a GPU then draws its batches there."""
        self.inputs, self.target, self.hand = self.inputs.to(device), self.target.to(device), self.hand.to(device)
        return self

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def batch(self, idx: torch.Tensor, crop: tuple[int, int] | None = None,
              gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Samples idx as float in [0, 1], optionally one random (h, w) crop at offsets on the refiner's
        8-pixel grid (its coarsest level), the same for the whole batch."""
        x, y, hand = self.inputs[idx], self.target[idx], self.hand[idx]
        if crop is not None:
            H, W = x.shape[-2:]
            ch, cw = min(crop[0], H), min(crop[1], W)
            top = 8 * int(torch.randint((H - ch) // 8 + 1, (1,), generator=gen))
            left = 8 * int(torch.randint((W - cw) // 8 + 1, (1,), generator=gen))
            x, y = x[..., top:top + ch, left:left + cw], y[..., top:top + ch, left:left + cw]
            hand = hand[..., top:top + ch, left:left + cw]
        return x.float() / 255, y.float() / 255, hand


ADVERSARIAL_REGIONS = ('hand', 'all')
PIXEL_LOSSES = ('l1', 'l2')


# ---- 2. fit ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitConfig:
    steps: int = 4000
    batch: int = 16
    crop: tuple[int, int] | None = (64, 64)  # training crops (h, w): the refiner is convolutional
    lr: float = 1e-3
    hole_weight: float = 4.0  # extra pixel-loss weight on pixels the render does not cover
    hand_weight: float = 4.0  # extra pixel-loss weight on the hand's region
    gradient_weight: float = 1.0  # image-gradient L1 on holes and hand
    # 'l1' (the median colour of what the holes may hold) or 'l2' (their mean: what PSNR rewards where the
    # content is a guess)
    pixel_loss: str = 'l1'
    # with a warm start: the last layer (the residual over the smooth fill) starts at zero, so the fit starts
    # from the smooth fill exactly and the checkpoint's features (for a smooth fill the old residual was not
    # learnt over, e.g. refiner.fill_fade_px)
    fresh_residual: bool = False
    adversarial_weight: float = 0.0  # > 0: a patch critic judges the refiner's pixels (patch_critic.py)
    # where: 'hand' (the hand's region: the keypoints give its shape, so there is little left to guess) or
    # 'all' (the holes too: measured to draw streaks that grow as imagined strips are committed)
    adversarial_region: str = 'hand'
    critic_lr: float = 2e-4
    save_every: int = 200
    log_every: int = 50
    seed: int = 0


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def refiner_loss(pred: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor, hand: torch.Tensor,
                 cfg: FitConfig) -> dict[str, torch.Tensor]:
    """pred, target (B, 3, H, W); inputs (B, IN_CHANNELS, H, W); hand (B, H, W) bool. 'pixel': the L1 or the
    squared error (cfg.pixel_loss), weighted."""
    hole = inputs[:, 3] < 0.5
    focus = (hole | hand).float()[:, None]  # (B, 1, H, W)
    weight = 1 + cfg.hole_weight * hole.float()[:, None] + cfg.hand_weight * hand.float()[:, None]
    diff = pred - target
    pixel = (weight * (diff.abs() if cfg.pixel_loss == 'l1' else diff.square())).mean()
    (px, py), (tx, ty) = _gradients(pred), _gradients(target)
    grad = ((focus[..., :, 1:] * (px - tx).abs()).mean() + (focus[..., 1:, :] * (py - ty).abs()).mean())
    return {'loss': pixel + cfg.gradient_weight * grad, 'pixel': pixel, 'gradient': grad}


Parts = Mapping[str, tuple[torch.nn.Module, torch.optim.Optimizer]]  # each trained part and its optimiser


def _optim_prefix(name: str) -> str:
    return 'optim' if name == 'model' else f'{name}_optim'  # the refiner's keys as the first fits saved them


def _save(out: Path, step: int, parts: Parts) -> None:
    """Each part's weights and Adam state, under its name, in one safetensors file written atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for part, (module, opt) in parts.items():
        tensors.update({f'{part}.{k}': v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
        names = {id(p): n for n, p in module.named_parameters()}
        prefix = _optim_prefix(part)
        for group in opt.param_groups:
            for p in group['params']:
                st = opt.state.get(p, {})
                for key in ('exp_avg', 'exp_avg_sq'):
                    if key in st:
                        tensors[f'{prefix}.{names[id(p)]}.{key}'] = st[key].cpu().contiguous()
                if 'step' in st:
                    tensors[f'{prefix}.{names[id(p)]}.step'] = torch.as_tensor(st['step']).reshape(1).float()
    with atomic_path(out / 'refiner_state.safetensors') as tmp:
        save_file(tensors, str(tmp), metadata={'step': str(step), 'rng': json.dumps(torch.get_rng_state().tolist())})


def _load(out: Path, parts: Parts) -> int:
    path = out / 'refiner_state.safetensors'
    if not path.is_file():
        return 0
    with safe_open(str(path), framework='pt') as f:
        meta = f.metadata() or {}
        keys = set(f.keys())
        for part, (module, opt) in parts.items():
            own = {k[len(part) + 1:]: f.get_tensor(k) for k in keys if k.startswith(f'{part}.')}
            if not own:  # a part added to a fit saved without it starts afresh
                log.info('no %s in %s: it starts afresh', part, path)
                continue
            module.load_state_dict(own)
            prefix = _optim_prefix(part)
            for name, p in module.named_parameters():
                if f'{prefix}.{name}.exp_avg' in keys:
                    opt.state[p] = {'exp_avg': f.get_tensor(f'{prefix}.{name}.exp_avg').to(p.device),
                                    'exp_avg_sq': f.get_tensor(f'{prefix}.{name}.exp_avg_sq').to(p.device),
                                    'step': f.get_tensor(f'{prefix}.{name}.step').reshape(())}
        torch.set_rng_state(torch.tensor(json.loads(meta['rng']), dtype=torch.uint8))
    return int(meta['step'])


def fit_refiner(engine: WorldEngine, traces: Traces, held_out: Traces | None, out: Path, cfg: FitConfig,
                refiner_cfg: RefinerConfig, max_minutes: float | None = None, warm_start: bool = False,
                anchor: Refiner | None = None, scene: Refiner | None = None,
                device: torch.device | str = 'cpu') -> Path:
    """Train the refiner (resuming from `out`), then save the engine's model with it as out/final.safetensors.
    warm_start: a fit with nothing to resume starts from the checkpoint's own refiner (of the part fitted; a
    hand refiner the checkpoint lacks starts from its scene refiner) instead of afresh.
    anchor: a frozen refiner whose output is the target outside the hand's region (the truth stays the target
    inside it), so a fit for the hand keeps what another refiner does everywhere else.
    scene: a frozen scene refiner; the fit is then of the hand refiner (refiner.hand_refiner), trained on the
    output the two form together (model/refiner.py: refine), and saved beside it. A fit of the scene refiner of
    a model with a hand refiner is likewise trained on that output, the hand refiner frozen.
    device: where the refiners run and the traces are moved (the saved weights are on the CPU either way)."""
    if cfg.fresh_residual and not warm_start:
        raise TrainError('a fresh residual is for a warm start: a refiner fitted afresh starts at zero anyway')
    if cfg.pixel_loss not in PIXEL_LOSSES:
        raise TrainError(f'pixel loss must be one of {", ".join(PIXEL_LOSSES)}, got {cfg.pixel_loss!r}')
    if cfg.adversarial_region not in ADVERSARIAL_REGIONS:
        raise TrainError(f'adversarial region must be one of {", ".join(ADVERSARIAL_REGIONS)}, '
                         f'got {cfg.adversarial_region!r}')
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if scene is not None:
        if anchor is not None:
            raise TrainError('a hand refiner is fitted beside a scene refiner, which needs no anchor')
        refiner_cfg = replace(refiner_cfg, hand_refiner=True)
        scene = _frozen(scene, device)
    anchor = None if anchor is None else _frozen(anchor, device)
    refiner = Refiner(refiner_cfg)
    if warm_start:
        own = engine.model.refiner if scene is None else (engine.model.hand_refiner or engine.model.refiner)
        if own is None:
            raise TrainError('--warm-start: the checkpoint has no refiner to start from')
        try:
            refiner.load_state_dict(own.state_dict())
        except RuntimeError as e:
            raise TrainError(f"--warm-start: the checkpoint's refiner does not fit this config's: {e}") from None
        if cfg.fresh_residual:
            refiner.zero_residual()
    refiner.to(device)
    traces.to(device)
    if held_out is not None:
        held_out.to(device)
    if traces.inputs.shape[1] != refiner.in_channels:
        raise TrainError(f'traces have {traces.inputs.shape[1]} input channels, this refiner takes '
                         f'{refiner.in_channels} (refiner.hand_colour {refiner_cfg.hand_colour})')
    opt = torch.optim.AdamW(refiner.parameters(), lr=cfg.lr, weight_decay=1e-4)

    own_hand = engine.model.hand_refiner if scene is None and refiner_cfg.hand_refiner else None
    # the output trained is the one the engine forms (model/refiner.py: refine), the other refiner frozen
    scene_part, hand_part = (scene, refiner) if scene is not None else (
        refiner, None if own_hand is None else _frozen(own_hand, device))

    def form(x: torch.Tensor, hand: torch.Tensor) -> torch.Tensor:
        return refine(scene_part, hand_part, x, hand, refiner_cfg.hand_feather)

    parts: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]] = {'model': (refiner, opt)}
    critic: PatchCritic | None = None
    if cfg.adversarial_weight > 0:
        critic = PatchCritic()
        critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, betas=(0.5, 0.999))
        parts['critic'] = (critic, critic_opt)
    step = _load(out, parts)
    if step:
        log.info('resumed the refiner at step %d', step)
    (out / 'fit.json').write_text(json.dumps({'fit': asdict(cfg), 'refiner': asdict(refiner_cfg),
                                              'samples': len(traces)}, indent=1))
    metrics = out / 'metrics.csv'
    new_file = not metrics.exists()
    t0 = time.perf_counter()
    sums: dict[str, float] = {}
    extra = ['adversarial', 'critic'] if critic is not None else []
    with open(metrics, 'a', newline='') as fh:
        writer = csv.writer(fh)
        if new_file:
            writer.writerow(['step', 'loss', 'pixel', 'gradient', 'held_out_hole_psnr', 'held_out_fill_psnr', 'wall_s',
                             'held_out_hole_structure', *extra])
        while step < cfg.steps:
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            for g in opt.param_groups:
                g['lr'] = lr
            x, y, hand = traces.batch(torch.randint(len(traces), (cfg.batch,)), cfg.crop)
            pred = form(x, hand)
            if anchor is not None:
                with torch.no_grad():
                    y = torch.where(hand[:, None], y, anchor(x))
            losses = refiner_loss(pred, y, x, hand, cfg)
            if critic is not None:
                coverage, focus = x[:, 3:4], hand[:, None]
                if cfg.adversarial_region == 'all':
                    focus = focus | (coverage < 0.5)
                losses['critic'] = critic_loss(critic, y, pred, coverage, focus)
                critic_opt.zero_grad(set_to_none=True)
                losses['critic'].backward()
                critic_opt.step()
                losses['adversarial'] = generator_loss(critic, pred, coverage, focus)
                losses['loss'] = losses['loss'] + cfg.adversarial_weight * losses['adversarial']
            opt.zero_grad(set_to_none=True)
            if losses['loss'].requires_grad:  # a hand fit's batch without a hand gives it nothing to learn
                losses['loss'].backward()
                torch.nn.utils.clip_grad_norm_(refiner.parameters(), 1.0)
                opt.step()
            step += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if step % cfg.log_every == 0:
                ho = hole_psnr(form, held_out) if held_out is not None else (math.nan, math.nan, math.nan)
                n = cfg.log_every
                writer.writerow([step, sums['loss'] / n, sums['pixel'] / n, sums['gradient'] / n, *ho[:2],
                                 round(time.perf_counter() - t0, 1), ho[2], *(sums[k] / n for k in extra)])
                fh.flush()
                log.info('step %d loss %.4f held-out hole PSNR %.2f (smooth fill %.2f), structure %.3f', step,
                         sums['loss'] / n, *ho)
                sums = {}
            if step % cfg.save_every == 0 or step == cfg.steps:
                _save(out, step, parts)
            if max_minutes is not None and time.perf_counter() - t0 > 60 * max_minutes:
                _save(out, step, parts)
                log.info('stopped at step %d after %.0f min (resumable)', step, max_minutes)
                break
    model = engine.model.cpu()
    model.config = model.config.replace(refiner=refiner_cfg)
    if scene is None:
        model.refiner = refiner.cpu().eval()
    else:
        model.refiner, model.hand_refiner = scene.cpu(), refiner.cpu().eval()
    final = out / 'final.safetensors'
    save_checkpoint(final, model, {'refiner': {'steps': step, 'samples': len(traces)}})
    return final


def _frozen(refiner: Refiner, device: torch.device | str) -> Refiner:
    return refiner.float().eval().requires_grad_(False).to(device)


@torch.no_grad()
def hole_psnr(form: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], traces: Traces,
              limit: int = 64) -> tuple[float, float, float]:
    """Over the hole pixels of up to `limit` held-out samples: the pooled PSNR of the output `form` makes from
    inputs and hand region, the smooth fill's, and the output's image-gradient energy there over the truth's
    (1: as much structure as the scene; a smooth fill falls below). The refiner has no layer that trains
    differently (GroupNorm, no dropout), so it is scored as it trains."""
    se_r, se_f, n, energy, energy_true = 0.0, 0.0, 0, 0.0, 0.0
    picks = torch.linspace(0, len(traces) - 1, min(limit, len(traces))).round().long()  # spread over all shards
    for i in range(0, len(picks), 32):
        x, y, hand = traces.batch(picks[i:i + 32])
        hole = (x[:, 3] < 0.5)[:, None].expand(-1, 3, -1, -1)
        pred = form(x, hand)
        se_r += float(((pred - y) ** 2)[hole].sum())
        se_f += float(((x[:, 5:8] - y) ** 2)[hole].sum())
        n += int(hole.sum())
        inner = hole[:, :1, 1:, 1:] & hole[:, :1, :-1, 1:] & hole[:, :1, 1:, :-1]  # a hole pixel and its neighbours
        energy += _gradient_energy(pred, inner)
        energy_true += _gradient_energy(y, inner)
    if not n:
        return math.nan, math.nan, math.nan
    return -10 * math.log10(se_r / n), -10 * math.log10(se_f / n), energy / max(energy_true, 1e-12)


def _gradient_energy(img: torch.Tensor, where: torch.Tensor) -> float:
    """Summed squared forward differences of the images' luma (B, 3, H, W) at `where` (B, 1, H-1, W-1)."""
    luma = (img * torch.tensor([0.299, 0.587, 0.114], device=img.device)[:, None, None]).sum(1, keepdim=True)
    dx, dy = luma[..., 1:, 1:] - luma[..., 1:, :-1], luma[..., 1:, 1:] - luma[..., :-1, 1:]
    return float(((dx**2 + dy**2) * where).sum())
