"""Objects the hand moves: a grasp tracker over the scene memory, from the hand's keypoints alone.

What a network this size cannot afford to learn, geometry gives: when the fingers close, the scene memory's
points around the grasp point are the held object; they leave the static scene, ride rigidly with the palm, are
rendered on top of the static render where the hand carries them, and go back into the scene where the hand
opens (they stay where they were placed). The hole the object leaves behind is left uncovered, for the refiner
(the hand refiner, when there is one) to fill.

1. closed or open: the closure is the mean fingertip-to-wrist distance (index to pinky) in palm lengths (wrist
   to middle MCP), which falls monotonically as the fingers curl (synthetic/hand.py: 1.88 open, 1.85 at the
   scripts' open curl, 1.23 at their grasp, 0.76 a fist). The hand closes below `close_below` and opens above
   `open_above` (hysteresis: a closure between them keeps the state).
2. the grasp point, from the keypoints: in the palm frame (wrist origin; x to the middle MCP; y towards the
   thumb side, from the pinky MCP to the index MCP; the palm side, the way the fingertips curl), at
   GRASP_IN_PALM palm lengths, which is where synthetic/hand.py holds an object's centre (for either hand).
3. at grasp onset, the held object: the points within `radius` of the grasp point, above the support under it
   (the world's z is up, REP-103: the support is a low percentile of the heights of the points in a ring around
   it). From the scene memory (which never holds the hand: its region is never committed); at a reset with a
   closed hand also from the start frame's pixels in the hand's region, which the scene memory left out, and
   of those only the ones clear of the hand's own volume (the fingers' and the palm's spheres).
4. while held, the rigid transform of the palm keypoints (wrist and the four MCPs) from onset to now (Kabsch)
   carries the held points; they are rendered z-buffered against the static render and the hand's own volume
   (the fingers in front of the object hide it).
5. at release, the points go back into the scene memory where they are. Until the next grasp they are also
   drawn like a held object, over the hand's region (which the render leaves out, and which still covers an
   object just let go of) wherever the hand's volume does not hide them.

Keypoints are (21, 3) in the camera's optical frame (OpenCV axes, metres), as the engine takes them; a frame
without them (or with the palm or fingertips behind the camera) changes nothing: a held object stays held where
it was last carried.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from worldscape_ros.errors import ConfigError
from worldscape_ros.model.camera import check_intrinsics, check_rigid
from worldscape_ros.model.config import SceneConfig
from worldscape_ros.model.hands import FINGER_WIDTH_M, HAND_BONES, validate_keypoints
from worldscape_ros.model.scene_memory import OBSERVED, SceneMemory, ScenePoints, SceneRender

WRIST, MIDDLE_MCP, INDEX_MCP, PINKY_MCP = 0, 9, 5, 17
PALM = (0, 5, 9, 13, 17)  # wrist and the four MCPs: rigid in a hand, what carries the object
FINGERTIPS = (8, 12, 16, 20)
MCPS = (5, 9, 13, 17)
PALM_FAN = ((0, 5, 9), (0, 9, 13), (0, 13, 17))  # the palm as triangles from the wrist
# Where a held object's centre sits, in palm lengths along (to the middle MCP, to the thumb side, to the palm
# side) from the wrist: synthetic/hand.py's GRASP_POINT in this frame (tests check the two agree).
GRASP_IN_PALM = np.array([0.893, -0.038, 0.473])
PALM_HALF_THICKNESS_M = 0.015  # the palm's volume around the plane of its keypoints
PLACED_DEPTH_TOL_M = 0.005  # a placed object's point is the static render's own where their depths agree this well


@dataclass(frozen=True)
class GraspConfig:
    close_below: float = 1.50  # closure (palm lengths) under which the hand closes: curl 0.45 in synthetic/hand.py
    open_above: float = 1.62  # closure over which it opens again: curl 0.36
    radius_m: float = 0.07  # the held object's points lie within this of the grasp point
    support_ring_m: tuple[float, float] = (0.07, 0.14)  # horizontal ring around the grasp point where the
    # support is measured
    support_percentile: float = 25.0  # of the ring's point heights: the support's height
    above_support_m: float = 0.008  # a held point lies this far above the support at least
    hand_clearance_m: float = 0.005  # and this far outside the hand's volume (bones and palm) at least
    moving_margin_px: int = 2  # pixels around a held object kept out of the imagined commits

    def __post_init__(self) -> None:
        if not 0 < self.close_below < self.open_above:
            raise ConfigError(f'grasp thresholds need 0 < close_below < open_above, got {self.close_below} and '
                              f'{self.open_above}')
        lo, hi = self.support_ring_m
        if not (self.radius_m > 0 and 0 <= lo < hi):
            raise ConfigError(f'grasp radius_m must be positive and support_ring_m an interval, got {self.radius_m} '
                              f'and {self.support_ring_m}')
        if not 0 <= self.support_percentile <= 100:
            raise ConfigError(f'support_percentile must be in [0, 100], got {self.support_percentile}')
        if self.moving_margin_px < 0:
            raise ConfigError(f'moving_margin_px must be >= 0, got {self.moving_margin_px}')


# ---- the hand from its keypoints ---------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def palm_length(kp: np.ndarray) -> float:
    """Wrist to middle MCP (metres): the hand's scale."""
    return float(np.linalg.norm(kp[MIDDLE_MCP] - kp[WRIST]))


def closure(kp: np.ndarray) -> float:
    """Mean fingertip-to-wrist distance, index to pinky, in palm lengths: small when the fingers are closed."""
    kp = validate_keypoints(kp)
    length = palm_length(kp)
    if length < 1e-6:
        raise ValueError('hand keypoints have the wrist on the middle MCP (a palm of zero length)')
    return float(np.linalg.norm(kp[list(FINGERTIPS)] - kp[WRIST], axis=1).mean() / length)


def grasp_point(kp: np.ndarray) -> np.ndarray:
    """Where a held object's centre is (3,), in the keypoints' frame. The palm side is the way the fingertips
    curl, so it is defined once the fingers bend (always, when the hand holds something)."""
    kp = validate_keypoints(kp)
    length = palm_length(kp)
    x = _unit(kp[MIDDLE_MCP] - kp[WRIST])
    y = kp[INDEX_MCP] - kp[PINKY_MCP]
    y = _unit(y - (y @ x) * x)
    normal = np.cross(x, y)
    curl = kp[list(FINGERTIPS)].mean(0) - kp[list(MCPS)].mean(0)
    palm_side = normal if curl @ normal >= 0 else -normal
    a, b, c = GRASP_IN_PALM * length
    return kp[WRIST] + a * x + b * y + c * palm_side


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rigid (4, 4) transform T (rotation, no reflection) that best maps points src (N, 3) onto dst (N, 3)."""
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(f'kabsch needs two (N >= 3, 3) point sets of one shape, got {src.shape} and {dst.shape}')
    cs, cd = src.mean(0), dst.mean(0)
    H = (src - cs).T @ (dst - cd)
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
    R = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, cd - R @ cs
    return T


def hand_volume(kp: np.ndarray, step_m: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """The hand as spheres: centres (M, 3) along every bone and over the palm, and their radii (M,)."""
    kp = validate_keypoints(kp)
    centres, radii = [], []
    for a, b in HAND_BONES:
        n = max(2, int(np.ceil(np.linalg.norm(kp[b] - kp[a]) / step_m)) + 1)
        s = np.linspace(0.0, 1.0, n)[:, None]
        centres.append((1 - s) * kp[a] + s * kp[b])
        radii.append(np.full(n, FINGER_WIDTH_M / 2))
    for i, j, k in PALM_FAN:
        n = max(2, int(np.ceil(max(np.linalg.norm(kp[j] - kp[i]), np.linalg.norm(kp[k] - kp[i])) / step_m)))
        w = np.array([(p, q) for p in range(n + 1) for q in range(n + 1 - p)], np.float64) / n  # barycentric
        centres.append(kp[i] + w[:, :1] * (kp[j] - kp[i]) + w[:, 1:] * (kp[k] - kp[i]))
        radii.append(np.full(len(w), PALM_HALF_THICKNESS_M))
    return np.concatenate(centres), np.concatenate(radii)


def hand_depth(kp_cam: np.ndarray, K: np.ndarray, height: int, width: int) -> torch.Tensor:
    """The depth of the hand's front surface (H, W) (its volume as spheres; inf where it is not): what a held
    object behind the fingers is hidden by."""
    centres, radii = hand_volume(kp_cam)
    out = torch.full((height * width + 1,), torch.inf, dtype=torch.float64)
    z = centres[:, 2]
    front = z > 1e-3
    if not front.any():
        return out[:-1].reshape(height, width).float()
    c, r, z = centres[front], radii[front], z[front]
    u = K[0, 0] * c[:, 0] / z + K[0, 2]
    v = K[1, 1] * c[:, 1] / z + K[1, 2]
    rho = K[0, 0] * r / z  # pixels
    reach = int(min(np.ceil(rho.max()), max(height, width)))
    du, dv = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing='xy')
    pu = np.floor(u)[:, None] + du.reshape(1, -1)  # (M, O) pixel columns near each sphere
    pv = np.floor(v)[:, None] + dv.reshape(1, -1)
    hit = ((pu + 0.5 - u[:, None]) ** 2 + (pv + 0.5 - v[:, None]) ** 2 <= rho[:, None] ** 2)
    hit &= (pu >= 0) & (pu < width) & (pv >= 0) & (pv < height)
    flat = np.where(hit, pv * width + pu, height * width).astype(np.int64).reshape(-1)
    depth = np.broadcast_to((z - r)[:, None], hit.shape).reshape(-1)
    out = out.scatter_reduce(0, torch.from_numpy(flat), torch.from_numpy(np.ascontiguousarray(depth)), reduce='amin')
    return out[:-1].reshape(height, width).float()


def _to_world(kp_cam: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    return kp_cam @ c2w[:3, :3].T + c2w[:3, 3]


def _usable(kp_cam: np.ndarray) -> bool:
    """The palm and the fingertips in front of the camera (an absent keypoint has z = 0)."""
    return bool(np.all(kp_cam[list(PALM + FINGERTIPS), 2] > 1e-3))


# ---- the tracker -----------------------------------------------------------------------------------------
@dataclass
class Held:
    """An object in the hand: its points where they were at onset (world), the palm then, the palm's motion since."""

    points: SceneMemory  # in the world as at onset
    palm: np.ndarray  # (5, 3) world, at onset
    motion: np.ndarray  # (4, 4) world: onset -> now


@dataclass
class GraspView:
    """One target camera's render with the held object in it."""

    render: SceneRender  # the static scene, the held object z-buffered on top
    held: torch.Tensor  # (H, W) bool: pixels the held object shows in (which the hand's region must not hide)
    moving: torch.Tensor  # (H, W) bool: the held object's footprint, grown: never committed as static scene
    # (H, W) bool: the place the held object was taken from, where the static render has nothing (the object
    # left it), grown like `moving`: the hand changed it, so the hand refiner fills it, and the fill is committed
    vacated: torch.Tensor


class GraspTracker:
    """Decides from the keypoints when the hand holds something, and moves what it holds."""

    def __init__(self, config: GraspConfig | None = None, scene_config: SceneConfig | None = None,
                 device: str | torch.device = 'cpu') -> None:
        self.config = config or GraspConfig()
        self.scene_config = scene_config or SceneConfig()
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        self.closed = False
        self.held: Held | None = None
        self.placed: SceneMemory | None = None  # the object last put down (also in the scene), world

    @property
    def holding(self) -> int:
        """The number of points in the hand."""
        return 0 if self.held is None else len(self.held.points)

    def start(self, scene: SceneMemory, rgb: torch.Tensor, depth: torch.Tensor, c2w: np.ndarray, K: np.ndarray,
              kp_cam: np.ndarray, region: torch.Tensor, depth_measured: bool = True) -> None:
        """A session's first frame: rgb (3, H, W) in [0, 1], its depth (H, W) (depth_measured False: the model's
        guess), the hand's keypoints and its region (H, W) bool (which the scene memory left out). A closed hand
        holds what it holds already: the points near its grasp point, from the scene and from the region's pixels."""
        self.reset()
        kp = validate_keypoints(kp_cam)
        if not _usable(kp) or closure(kp) >= self.config.close_below:
            return
        frame = SceneMemory(self.scene_config, self.device)
        frame.commit(rgb, depth, c2w, K, mask=region, trust=OBSERVED, depth_measured=depth_measured)
        self.closed = True
        self._grasp(scene, _to_world(kp, np.asarray(c2w, np.float64)), frame.points())

    def update(self, scene: SceneMemory, c2w: np.ndarray, kp_cam: np.ndarray | None) -> None:
        """One new frame's hand: grasp, carry or release. c2w: the frame's camera (the keypoints' frame)."""
        if kp_cam is None:
            return
        kp = validate_keypoints(kp_cam)
        if not _usable(kp):
            return
        kp_w = _to_world(kp, np.asarray(c2w, np.float64))
        c = closure(kp)
        if not self.closed and c < self.config.close_below:
            self.closed = True
            self._grasp(scene, kp_w, None)
        elif self.closed and c > self.config.open_above:
            self.closed = False
            self._release(scene)
        elif self.held is not None:
            self.held.motion = kabsch(self.held.palm, kp_w[list(PALM)])

    def look(self, scene: SceneMemory, c2w: np.ndarray, kp_cam: np.ndarray | None, K: np.ndarray, height: int,
             width: int) -> GraspView:
        """Update with this frame's hand, then render the scene and the held object into the camera."""
        check_rigid(np.asarray(c2w, np.float64), 'c2w')
        check_intrinsics(np.asarray(K))
        self.update(scene, c2w, kp_cam)
        static = scene.render(c2w, K, height, width)
        none = torch.zeros(height, width, dtype=torch.bool, device=static.mask.device)
        if self.held is not None and len(self.held.points):
            # the held points as they were at onset, seen from the camera moved back by the palm's motion
            obj = self.held.points.render(np.linalg.inv(self.held.motion) @ np.asarray(c2w, np.float64), K, height,
                                          width)
            shows = obj.mask & (~static.mask | (obj.depth < static.depth))
        elif self.placed is not None:  # in the static render too: shown where it is the nearest there
            obj = self.placed.render(c2w, K, height, width)
            shows = obj.mask & static.mask & (obj.depth <= static.depth + PLACED_DEPTH_TOL_M)
        else:
            return GraspView(static, none, none, none)
        if kp_cam is not None:
            shows &= obj.depth < hand_depth(validate_keypoints(kp_cam), np.asarray(K, np.float64), height,
                                            width).to(obj.depth.device)
        render = SceneRender(torch.where(shows, obj.rgb, static.rgb), torch.where(shows, obj.depth, static.depth),
                             static.mask | shows, torch.where(shows, obj.trust, static.trust),
                             torch.where(shows, obj.born, static.born))
        if self.held is None:
            return GraspView(render, shows, none, none)  # a placed object is static scene again
        left = self.held.points.render(c2w, K, height, width).mask & ~render.mask  # the onset place, now a hole
        return GraspView(render, shows, self._grown(obj.mask), self._grown(left))

    def _grown(self, mask: torch.Tensor) -> torch.Tensor:
        m = self.config.moving_margin_px
        return F.max_pool2d(mask[None, None].float(), 2 * m + 1, stride=1, padding=m)[0, 0] > 0

    def _grasp(self, scene: SceneMemory, kp_w: np.ndarray, extra: ScenePoints | None) -> None:
        """Grasp onset: the points of the object at the grasp point leave the scene (and `extra` is searched)."""
        g = torch.from_numpy(grasp_point(kp_w)).float().to(self.device)
        sources = [scene.points()] + ([extra] if extra is not None and len(extra) else [])
        support = self._support(torch.cat([s.xyz for s in sources]), g)
        taken = [scene.take(self._object(scene.points(), g, support)) if len(scene) else None]
        if extra is not None and len(extra):
            sel = self._object(extra, g, support, hand_volume(kp_w))
            taken.append(extra.at(sel))
        held = SceneMemory(self.scene_config, self.device)
        for t in taken:
            if t is not None:
                held.put(t)
        self.held = Held(held, kp_w[list(PALM)].copy(), np.eye(4))
        self.placed = None

    def _release(self, scene: SceneMemory) -> None:
        if self.held is not None and len(self.held.points):
            where = self.held.points.points().moved(torch.from_numpy(self.held.motion).float())
            scene.put(where)
            self.placed = SceneMemory(self.scene_config, self.device)
            self.placed.put(where)
        self.held = None

    def _support(self, xyz: torch.Tensor, g: torch.Tensor) -> float:
        """The height of what the object rests on: a low percentile of the heights in a ring around it (-inf
        when the ring holds nothing: the object is free to be anything near the grasp point)."""
        lo, hi = self.config.support_ring_m
        r = torch.linalg.norm(xyz[:, :2] - g[:2], dim=1)
        ring = xyz[(r >= lo) & (r < hi) & (xyz[:, 2] < g[2]), 2]
        if not len(ring):
            return -float('inf')
        return float(torch.quantile(ring.double(), self.config.support_percentile / 100))

    def _object(self, pts: ScenePoints, g: torch.Tensor, support: float,
                volume: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
        """(N,) bool: the points near the grasp point, above the support (and outside the hand's `volume`)."""
        cfg = self.config
        sel = (torch.linalg.norm(pts.xyz - g, dim=1) < cfg.radius_m) & (pts.xyz[:, 2] > support + cfg.above_support_m)
        if volume is None or not bool(sel.any()):
            return sel
        centres = torch.from_numpy(volume[0]).float().to(pts.xyz.device)
        radii = torch.from_numpy(volume[1]).float().to(pts.xyz.device)
        idx = sel.nonzero()[:, 0]
        gap = (torch.cdist(pts.xyz[idx], centres) - radii).min(dim=1).values  # (S,) outside the hand's spheres
        sel[idx] = gap > cfg.hand_clearance_m
        return sel
