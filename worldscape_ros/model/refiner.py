"""The output refiner: forms each frame in pixel space from the scene memory's render and the DiT's imagination.

What the render covers is kept as rendered (it is the scene as seen); the refiner writes only the pixels the
render does not cover, plus a one-pixel band around them (edges, cracks). The scene memory's imagined points are
kept like observed ones, or (`refiner.imagined`) proposed for the refiner to correct, or hidden from it. It
predicts a residual over a start: a proposed imagined pixel as rendered, else a smooth fill of the hole (OpenCV's
Telea inpainting; with `refiner.fill: far_side`, from the far side of a depth edge only), from:
  the render and its coverage and trust, the smooth fill, the DiT's decoded frame (its imagination of the
  whole view), and the hand's pose video (where the hand is now).
A small U-Net with a dilated bottleneck, so one pass sees across a revealed strip. With `refiner.hand_refiner`, a
second one writes the hand's dynamic region (`refine`): the scene refiner is then fitted for the static world and
the hand refiner for the hand, and neither's fit moves the other's pixels.

Its inputs are made by `refiner_inputs`, called by the engine per frame and by training on what the engine
traced, so both see the same thing.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from worldscape_ros.model.config import RefinerConfig
from worldscape_ros.model.fade import fade_weight, source_distance

IN_CHANNELS = 3 + 1 + 1 + 3 + 3 + 3  # render, coverage, trust, smooth fill, DiT frame, pose video
HAND_COLOUR_CHANNELS = 3  # with refiner.hand_colour: the start hand's colour over the hand's region


def in_channels(config: RefinerConfig) -> int:
    return IN_CHANNELS + (HAND_COLOUR_CHANNELS if config.hand_colour else 0)


# refiner.fill 'far_side': the border pixels of a hole left out of Telea's sources
FAR_SIDE_WINDOW = 11  # px: the neighbourhood a border pixel is compared with
FAR_SIDE_RATIO = 0.3  # nearer than (1 - this) x the farthest depth there: the near side of a depth edge
FAR_SIDE_GROW = 1  # px: the near side left out this much wider, so its antialiased edge is no source either


def near_side(depth: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H, W) bool: the covered pixels by a hole that lie on the near side of a depth edge there. depth (H, W)
    metres (not read in the hole), hole (H, W) bool."""
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (FAR_SIDE_WINDOW, FAR_SIDE_WINDOW))
    d = np.where(hole, 0.0, depth).astype(np.float32)
    farthest = cv2.dilate(d, square)
    by_hole = cv2.dilate(hole.astype(np.uint8), square) > 0
    near = ~hole & by_hole & (d < (1 - FAR_SIDE_RATIO) * farthest)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * FAR_SIDE_GROW + 1, 2 * FAR_SIDE_GROW + 1))
    return (cv2.dilate(near.astype(np.uint8), disc) > 0) & ~hole


def smooth_fill(render: torch.Tensor, hole: torch.Tensor, radius: float,
                depth: torch.Tensor | None = None) -> torch.Tensor:
    """Telea inpainting of the render's holes: (3, H, W) in [0, 1], (H, W) bool -> (3, H, W). With the render's
    depth (H, W) (refiner.fill 'far_side'), the near side of a depth edge at a hole is no source: what a near
    object uncovers is continued from what lies behind it."""
    if not bool(hole.any()):
        return render
    img = (render.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    holes = hole.cpu().numpy()
    unknown = holes
    if depth is not None:
        unknown = holes | near_side(depth.detach().float().cpu().numpy(), holes)
        if unknown.all():
            unknown = holes
    filled = cv2.inpaint(np.ascontiguousarray(img), unknown.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    filled_t = torch.from_numpy(filled).to(render.device).permute(2, 0, 1).float() / 255
    return torch.where(hole, filled_t, render.float())  # covered pixels exactly as rendered


def fade_fill(fill: torch.Tensor, hole: torch.Tensor, observed: torch.Tensor, colour: torch.Tensor,
              reach: float) -> torch.Tensor:
    """A smooth fill (3, H, W) whose holes (H, W) bool take the fill with weight fade_weight(observed, reach) and
    colour (3,) with the rest: far from anything observed the scene's colour, not a smear of the boundary."""
    w = torch.from_numpy(fade_weight(observed.cpu().numpy(), reach)).to(fill.device)  # (H, W)
    faded = w * fill + (1 - w) * colour.to(fill)[:, None, None]
    return torch.where(hole, faded, fill)


def anchor_low_frequencies(out: torch.Tensor, fill: torch.Tensor | None, where: torch.Tensor, sigma: float,
                           source: torch.Tensor | None = None, reach: float = 0.0,
                           prior: torch.Tensor | None = None, prior_weight: float = 0.0,
                           detail_reach: float = 0.0) -> torch.Tensor:
    """out (3, H, W) with its Gaussian (sigma px) low frequencies replaced by fill's (3, H, W) where (H, W) bool.
    With reach > 0, the replacement's weight falls as exp(-d / reach) with a pixel's distance d from the nearest
    pixel of source (H, W) bool, the pixels the fill continues. prior (3,): a colour the low frequencies are
    pulled toward, with prior_weight times what the fill's weight leaves (all of it where fill is None). With
    detail_reach > 0, out's detail (what lies above its low frequencies) is kept with weight exp(-d / detail_reach)
    from source's nearest pixel (none of it without a source pixel)."""
    size = 2 * math.ceil(3 * sigma) + 1
    o = out.detach().float().permute(1, 2, 0).cpu().numpy()
    low = cv2.GaussianBlur(o, (size, size), sigma)  # (H, W, 3)
    weight = np.zeros(o.shape[:2], np.float32)  # (H, W): the fill's share
    moved = np.zeros_like(o)
    seen = None if source is None else source.cpu().numpy()
    distance = None if seen is None or (reach <= 0 and detail_reach <= 0) else source_distance(seen)  # made once
    if fill is not None:
        f = fill.detach().float().permute(1, 2, 0).cpu().numpy()
        weight[:] = 1
        if reach > 0 and seen is not None:
            weight = fade_weight(seen, reach, distance)
        moved = (cv2.GaussianBlur(f, (size, size), sigma) - low) * weight[..., None]
    if prior is not None and prior_weight > 0:
        colour = prior.detach().float().cpu().numpy()[None, None]  # (1, 1, 3)
        moved = moved + (colour - low) * (prior_weight * (1 - weight))[..., None]
    if detail_reach > 0 and seen is not None:  # the detail fades with the distance from what was seen
        moved = moved - (o - low) * (1 - fade_weight(seen, detail_reach, distance))[..., None]
    anchored = (out.float() + torch.from_numpy(moved).to(out.device).permute(2, 0, 1)).clamp(0, 1)
    return torch.where(where, anchored, out.float())


def edit_region(hole: torch.Tensor, band: int) -> torch.Tensor:
    """(..., H, W) bool holes grown by `band` pixels: what the refiner may write."""
    if band <= 0:
        return hole
    h = hole.float().reshape(-1, 1, *hole.shape[-2:])
    grown = F.max_pool2d(h, 2 * band + 1, stride=1, padding=band) > 0
    return grown.reshape(hole.shape)


def refiner_inputs(render: torch.Tensor, coverage: torch.Tensor, trust: torch.Tensor, dit_frame: torch.Tensor,
                   pose_video: torch.Tensor | None, radius: float,
                   hand_colour: torch.Tensor | None = None, depth: torch.Tensor | None = None,
                   fade: tuple[torch.Tensor, torch.Tensor, float] | None = None) -> torch.Tensor:
    """One frame's refiner input (IN_CHANNELS, H, W). render (3, H, W) in [0, 1]; coverage (H, W) bool: the
    pixels kept as rendered; trust (H, W): > 0 where the render holds a point, so a rendered pixel outside
    `coverage` (an imagined one the refiner may rewrite) starts from its rendered colour, and only pixels with
    no point start from the smooth fill; dit_frame (3, H, W); pose_video (3, H, W) or None (no hand);
    hand_colour (3, H, W) given only to a refiner that reads it (refiner.hand_colour); depth (H, W): the render's,
    given for the far-side smooth fill (refiner.fill); fade: (observed (H, W) bool, colour (3,), reach px), the
    fill's holes faded into that colour away from the observed pixels (refiner.fill_fade_px, `fade_fill`)."""
    hole = ~coverage & (trust <= 0)
    fill = smooth_fill(render, hole, radius, depth)
    if fade is not None:
        fill = fade_fill(fill, hole, *fade)
    pv = torch.zeros_like(render) if pose_video is None else pose_video.float()
    extra = [] if hand_colour is None else [hand_colour.float()]
    return torch.cat([render.float(), coverage[None].float(), trust[None].float(), fill,
                      dit_frame.float().clamp(0, 1), pv, *extra])


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.GroupNorm(8, cout),
                         nn.GELU())


class Refiner(nn.Module):
    """Works at half resolution on space-to-depth pixels (lossless, 4x cheaper than full-resolution layers);
    the last layer folds its channels back into full-resolution pixels."""

    def __init__(self, config: RefinerConfig) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.in_channels = in_channels(config)
        unshuffled = 4 * self.in_channels  # space-to-depth: each input channel as 4 sub-pixel channels
        self.enc1 = nn.Sequential(nn.PixelUnshuffle(2), _block(unshuffled, c), _block(c, c))  # (B, c, H/2, W/2)
        self.enc2 = nn.Sequential(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), _block(2 * c, 2 * c))  # H/4
        self.enc3 = nn.Sequential(nn.Conv2d(2 * c, 3 * c, 4, stride=2, padding=1),
                                  *[_block(3 * c, 3 * c, d) for d in config.dilations])  # H/8
        self.dec2 = _block(3 * c + 2 * c, 2 * c)  # H/4
        self.dec1 = _block(2 * c + c, c)  # H/2
        self.out = nn.Sequential(nn.Conv2d(c, 4 * 3, 3, padding=1), nn.PixelShuffle(2))  # (B, 3, H, W)
        self.zero_residual()

    def zero_residual(self) -> None:
        """The last layer to zero: the refiner then writes the smooth fill exactly."""
        last = self.out[0]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, 3, H, W) in [0, 1]: the render where covered, refined elsewhere."""
        if inputs.shape[1] != self.in_channels:
            raise ValueError(f'the refiner takes {self.in_channels} input channels, got {inputs.shape[1]}')
        render, coverage, fill = inputs[:, 0:3], inputs[:, 3:4] > 0.5, inputs[:, 5:8]
        e1 = self.enc1(inputs)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode='bilinear', align_corners=False),
                                  e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode='bilinear', align_corners=False),
                                  e1], 1))
        imagined = (fill + self.out(d1)).clamp(0, 1)
        edit = edit_region(~coverage[:, 0], self.config.edge_band)[:, None]
        return torch.where(edit, imagined, render)


def hand_weight(dynamic: torch.Tensor, feather: int) -> torch.Tensor:
    """(B, H, W) bool dynamic region -> (B, 1, H, W) in [0, 1]: 1 on it, fading linearly to 0 over the
    2 x `feather` pixels around it (a seam the two refiners' outputs cross smoothly)."""
    w = dynamic[:, None].float()
    if feather <= 0:
        return w
    k = 2 * feather + 1
    grown = F.max_pool2d(w, k, stride=1, padding=feather)
    return F.avg_pool2d(grown, k, stride=1, padding=feather, count_include_pad=False)


def refine(refiner: Refiner, hand_refiner: Refiner | None, inputs: torch.Tensor, hand_area: torch.Tensor,
           feather: int) -> torch.Tensor:
    """The output (B, 3, H, W) from refiner inputs (B, in_channels, H, W): the scene refiner's, with the hand
    refiner's over each frame's hand area (B, H, W) bool (the hand, what it holds, the place that held it). Frames
    without one never run the hand refiner. Training calls it too (train/refiner.py), either refiner frozen."""
    out = refiner(inputs)
    if hand_refiner is None:
        return out
    rows = hand_area.flatten(1).any(1).nonzero()[:, 0]
    if not len(rows):
        return out
    w = hand_weight(hand_area[rows], feather)
    blended = w * hand_refiner(inputs[rows]) + (1 - w) * out[rows]
    return out.index_copy(0, rows, blended)
