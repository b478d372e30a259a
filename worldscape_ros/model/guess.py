"""The geometric guess: the scene memory started from a session's first frame, rendered into a chunk's cameras
(step 2 of engine.py), and the output formed from it (step 7).

The scene memory holds everything seen or imagined, the hand always left out (the hand moves on): from the
first frame what `refiner.start_hand` says is the hand, from every later one its whole region. The
guess renders it into each of the chunk's cameras, frame by frame, with what the hand holds carried along
(grasp.py); the DiT is conditioned on the render's latent and its coverage per latent pixel. The output keeps
the render where it covers; the refiner (or, without one, the DiT) writes the rest.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from worldscape_ros.model import hands
from worldscape_ros.model.config import ModelConfig
from worldscape_ros.model.frames import GeometricGuess
from worldscape_ros.model.grasp import GraspTracker
from worldscape_ros.model.refiner import Refiner, anchor_low_frequencies, refine, refiner_inputs, smooth_fill
from worldscape_ros.model.repeats import SurfaceRepeats
from worldscape_ros.model.scene_memory import IMAGINED, OBSERVED, SceneMemory, SceneRender

# Called with a chunk's refiner inputs (Fv, in_channels, H, W) and the area the hand changes (Fv, H, W): training
# traces what the engine shows the refiner.
Trace = Callable[[torch.Tensor, torch.Tensor], None]


def hand_region(cfg: ModelConfig, kp: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(H, W) bool: the hand's region as the scene memory leaves it out (refiner.hand_margin finger widths)."""
    return hands.hand_region(kp, intrinsics, cfg.height, cfg.width, cfg.refiner.hand_margin)


def start_hand(cfg: ModelConfig, kp: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(H, W) bool: what of a session's first frame the scene memory leaves out as the hand (refiner.start_hand)."""
    if cfg.refiner.start_hand == 'region':
        return hand_region(cfg, kp, intrinsics)
    return hands.hand_silhouette(kp, intrinsics, cfg.height, cfg.width, margin_px=cfg.refiner.start_hand_margin_px)


def start_scene(cfg: ModelConfig, scene: SceneMemory, grasp: GraspTracker, frame: torch.Tensor, depth: torch.Tensor,
                pose: np.ndarray, intrinsics: np.ndarray, kp: np.ndarray | None, depth_measured: bool = True) -> None:
    """Start the scene memory afresh from a session's first frame (3, H, W) in [0, 1] and its metric depth
    (H, W), seen from `pose`: all of it OBSERVED but the hand (kp (21, 3), or None: no hand; `start_hand`); a
    hand closed at the start holds what is in it. depth_measured False: the depth is the model's own guess."""
    scene.reset()
    grasp.reset()
    static = None if kp is None else ~torch.from_numpy(start_hand(cfg, kp, intrinsics)).to(frame.device)
    scene.commit(frame, depth, pose, intrinsics, mask=static, trust=OBSERVED, depth_measured=depth_measured)
    if kp is not None and static is not None:
        grasp.start(scene, frame, depth, pose, intrinsics, kp, ~static, depth_measured)
    if cfg.repeats.enabled and kp is None:
        repeats = SurfaceRepeats.from_frame(frame.permute(1, 2, 0).cpu().double().numpy(),
                                            depth.cpu().double().numpy(), pose, intrinsics, cfg.repeats)
        scene.repeat_planes, scene.repeat_source = repeats.planes, repeats.source


def render_guess(cfg: ModelConfig, scene: SceneMemory, grasp: GraspTracker, poses: list[np.ndarray],
                 kps: list[np.ndarray | None], intrinsics: np.ndarray, hand_colour: np.ndarray | None,
                 device: torch.device) -> GeometricGuess:
    """The scene memory rendered into each camera of `poses` (hand keypoints `kps` per frame, None: no hand);
    hand_colour (3,): the start hand's colour painted over the hand's region for the refiner (None: unknown)."""
    # frame by frame: the hand may grasp or let go between two frames of a chunk
    views = [grasp.look(scene, pose, kp, intrinsics, cfg.height, cfg.width) for pose, kp in zip(poses, kps)]
    renders = [v.render if kp is not None else repeated(cfg, scene, v.render, pose, intrinsics)
               for v, pose, kp in zip(views, poses, kps)]
    hand = _per_frame(cfg, kps, lambda kp: hand_region(cfg, kp, intrinsics), device)  # (Fv, H, W)
    # the hand's region is left out, except where a held (or just placed) object shows in front of it
    held = torch.stack([v.held for v in views])
    rendered = torch.stack([r.mask for r in renders])
    mask_v = (rendered & ~hand) | held
    dynamic = hand | torch.stack([v.moving for v in views])  # never static scene: the hand, a held object
    rgb_all = torch.stack([r.rgb for r in renders])  # (Fv, 3, H, W)
    rgb = rgb_all * mask_v[:, None]
    cov = F.avg_pool2d(mask_v.float()[:, None], cfg.codec.spatial_down)  # (Fv, 1, h, w)
    cov = cov.reshape(1, cfg.chunk_frames, cfg.codec.temporal_down, 1, *cov.shape[-2:]).mean(2)
    depth = torch.stack([r.depth for r in renders]) * mask_v
    trust_all = torch.stack([r.trust for r in renders])
    trust = trust_all * mask_v
    colour = torch.zeros(3) if hand_colour is None else torch.from_numpy(hand_colour).float()
    paint = hand if cfg.refiner.hand_paint == 'region' else _per_frame(
        cfg, kps, lambda kp: hands.hand_silhouette(kp, intrinsics, cfg.height, cfg.width), device)
    painted = paint[:, None].float() * colour[None, :, None, None].to(device)  # (Fv, 3, H, W)
    under = rendered & hand & ~held  # the static scene the memory holds behind the hand
    under_hand = torch.cat([rgb_all, trust_all[:, None]], 1) * under[:, None] if cfg.refiner.show_under_hand \
        else None  # (Fv, 4, H, W)
    hand_area = dynamic | torch.stack([v.vacated for v in views])
    scene_colour = None
    if cfg.refiner.anchor_prior > 0 or cfg.refiner.fill_fade_px > 0:  # (Fv, 3); NaN: no observed point held
        seen = scene.observed_colour()
        scene_colour = (torch.full((3,), float('nan')) if seen is None else seen).to(device).expand(len(poses), 3)
    return GeometricGuess(cov, depth, mask_v, rgb, trust, dynamic, hand_area, painted, under_hand, scene_colour)


def repeated(cfg: ModelConfig, scene: SceneMemory, render: SceneRender, pose: np.ndarray,
             intrinsics: np.ndarray) -> SceneRender:
    """The render with what no observed point covers, on a repeating plane of the start (repeats.py), taken
    from what the start frame shows a period along it: imagined points there are drawn over, since the copy is
    the better guess. The copies are not committed: they are made again from the start frame at each look."""
    if not cfg.repeats.enabled or not scene.repeat_planes or scene.repeat_source is None:
        return render
    observed = render.mask & (render.trust >= OBSERVED)
    rgb, depth, filled = SurfaceRepeats(scene.repeat_planes, scene.repeat_source, cfg.repeats).fill(
        (render.rgb * observed).permute(1, 2, 0).cpu().numpy(), (render.depth * observed).cpu().numpy(), pose,
        intrinsics)
    if not filled.any():
        return render
    dev = render.rgb.device
    take = torch.from_numpy(filled).to(dev)
    return SceneRender(torch.where(take, torch.from_numpy(rgb).float().permute(2, 0, 1).to(dev), render.rgb),
                       torch.where(take, torch.from_numpy(depth).float().to(dev), render.depth),
                       render.mask | take, torch.where(take, IMAGINED, render.trust),
                       torch.where(take, 0, render.born))  # made from what the start observed


def _per_frame(cfg: ModelConfig, kps: list[np.ndarray | None], mask: Callable[[np.ndarray], np.ndarray],
               device: torch.device) -> torch.Tensor:
    """(Fv, H, W) bool: mask(kp) for each frame's keypoints, all False for a frame without a hand."""
    return torch.stack([torch.zeros(cfg.height, cfg.width, dtype=torch.bool) if kp is None
                        else torch.from_numpy(mask(kp)) for kp in kps]).to(device)


def committable(cfg: ModelConfig, guess: GeometricGuess) -> torch.Tensor:
    """(Fv, H, W) bool: the imagined pixels of each frame that join the scene memory: those the render does not
    cover, never the hand's region, and in a frame without a hand none closer than scene.commit_margin_px to an
    observed pixel. A frame with a hand commits all it imagines: there that is what the hand uncovered or a held
    object left, which stays as drawn once the hand has moved on (with the margin there too, carry's object error
    rose from 2.0 to 6.7 px)."""
    imagined = ~guess.mask & ~guess.dynamic
    margin = cfg.scene.commit_margin_px
    if margin <= 0:
        return imagined
    observed = (guess.mask & (guess.trust >= OBSERVED)).cpu().numpy()
    hand = guess.hand_area.flatten(1).any(1).tolist()
    # distance of every pixel to the nearest observed one (a frame with none observed: all far)
    far = np.stack([cv2.distanceTransform((~o).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) > margin
                    if o.any() and not h else np.ones_like(o) for o, h in zip(observed, hand)])
    return imagined & torch.from_numpy(far).to(imagined.device)


def _anchored(cfg: ModelConfig, guess: GeometricGuess, observed: torch.Tensor, kept: torch.Tensor,
              out: torch.Tensor) -> torch.Tensor:
    """refiner.anchor_sigma: in each frame without a hand, what the refiner wrote (outside `kept`) takes the low
    frequencies of a smooth fill from the observed points in view (if any), and where that fill's weight leaves
    off, with refiner.anchor_prior, of the scene's observed colour; its detail fades with the distance from the
    observed points in view (refiner.detail_reach_px). Imagined points kept as rendered stay as they were
    committed."""
    r = cfg.refiner
    frames = []
    for i in range(out.shape[0]):
        written = ~kept[i]
        prior = _scene_colour(guess, i)
        seen = bool(observed[i].any())
        if bool(guess.hand_area[i].any()) or not bool(written.any()) or not (seen or prior is not None):
            frames.append(out[i])
            continue
        fill = None
        if seen:
            depth = guess.depth[i] * observed[i] if r.fill == 'far_side' else None
            fill = smooth_fill(guess.rgb[i] * observed[i], ~observed[i], r.inpaint_radius, depth)
        frames.append(anchor_low_frequencies(out[i], fill, written, r.anchor_sigma, observed[i],
                                             r.anchor_reach_px, prior, r.anchor_prior, r.detail_reach_px))
    return torch.stack(frames)


def _scene_colour(guess: GeometricGuess, i: int) -> torch.Tensor | None:
    """(3,) the scene's observed colour in frame i, or None: not rendered, or no observed point held."""
    if guess.scene_colour is None or bool(guess.scene_colour[i].isnan().any()):
        return None
    return guess.scene_colour[i]


def _fade(cfg: ModelConfig, guess: GeometricGuess, observed: torch.Tensor,
          i: int) -> tuple[torch.Tensor, torch.Tensor, float] | None:
    """refiner.fill_fade_px: what frame i's smooth fill fades into away from its observed pixels (the scene's
    observed colour), or None: the fade is off, the frame has a hand, or the scene holds no observed point."""
    colour = _scene_colour(guess, i)
    if cfg.refiner.fill_fade_px <= 0 or colour is None or bool(guess.hand_area[i].any()):
        return None
    return observed[i], colour, cfg.refiner.fill_fade_px


def compose(cfg: ModelConfig, guess: GeometricGuess, imagined: torch.Tensor, pose_video: np.ndarray | None,
            refiner: Refiner | None, hand_refiner: Refiner | None, trace: Trace | None,
            device: torch.device) -> torch.Tensor:
    """The output frames (Fv, 3, H, W) in [0, 1]: the render where it covers, the refiner's (or, without one,
    the DiT's) imagination elsewhere, the hand refiner's over the hand when there is one. imagined (Fv, 3, H, W):
    the DiT's decoded frames; pose_video (Fv, H, W, 3) uint8, the hand drawn."""
    if refiner is not None or trace is not None:
        pv = None if pose_video is None else torch.from_numpy(pose_video).to(device).permute(0, 3, 1, 2) / 255
        radius = cfg.refiner.inpaint_radius
        mode = cfg.refiner.imagined
        observed = guess.mask & (guess.trust >= OBSERVED)
        kept = guess.mask if mode == 'keep' else observed  # (Fv, H, W): written as rendered
        shown = observed if mode == 'hide' else guess.mask  # what of the render the refiner sees
        rgb, trust = guess.rgb * shown[:, None], guess.trust * shown
        if guess.under_hand is not None:  # shown, not kept: the refiner draws the hand over it
            under = guess.under_hand
            if mode == 'hide':
                under = under * (under[:, 3:] >= OBSERVED)
            rgb, trust = rgb + under[:, :3], trust + under[:, 3]
        colour = guess.hand_colour if cfg.refiner.hand_colour else None
        depth = guess.depth * shown if cfg.refiner.fill == 'far_side' else None
        inputs = torch.stack([refiner_inputs(rgb[i], kept[i], trust[i], imagined[i],
                                             None if pv is None else pv[i], radius,
                                             None if colour is None else colour[i],
                                             None if depth is None else depth[i], _fade(cfg, guess, observed, i))
                              for i in range(imagined.shape[0])])  # (Fv, in_channels, H, W)
        if trace is not None:
            trace(inputs, guess.hand_area)
        if refiner is not None:
            out = refine(refiner, hand_refiner, inputs, guess.hand_area, cfg.refiner.hand_feather).float()
            if cfg.refiner.anchor_sigma > 0:
                out = _anchored(cfg, guess, observed, kept, out)
            return out
    return torch.where(guess.mask[:, None], guess.rgb, imagined.clamp(0, 1))
