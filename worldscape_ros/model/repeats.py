"""Surface repeats: the planes of an observed frame's shell (floor, walls, ceiling: planes with nothing observed
behind them) and the periods at which each plane's texture repeats along it, found from the frame's own pixels; a
pixel no observation covers, on such a plane and beside its covered pixels, takes the colour observed one period
(or two) along it, sampled from the frame itself (its source view).

Wallpaper, tiles and carpets repeat: where a view shows a full period of a surface, the part of it the view does
not show is predictable to the pixel, which no smooth fill and no network of this size can do. Where no period
is found (a plane seen over less than one, or not repeating) nothing is filled.

A plane is n . x + d = 0 in the world (metres), n facing the camera that saw it. Its in-plane axes: for a vertical
plane the horizontal tangent and up; for a horizontal one, the horizontal tangents of the vertical planes beside
it (walls meet floors square) or, without any, the world's x and y. Shifts are world translations.

Conventions (camera.py): camera-to-world 4x4 poses with OpenCV axes, pixel centres at +0.5, metric z-depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from worldscape_ros.model.repeats_config import RepeatsConfig

UP = np.array([0.0, 0.0, 1.0])  # world up (REP-103)
PERIOD_TIE = 0.25  # see repeat_period
LOCAL_WINDOW_PX = 9  # the covered pixels beside a hole whose agreement with their shifted places is judged


@dataclass(frozen=True)
class RepeatPlane:
    """One observed plane and the translations under which its texture repeats."""

    normal: np.ndarray  # (3,) unit
    offset: float  # n . x + offset = 0
    shifts: tuple[np.ndarray, ...]  # (3,) world translations along the plane, one period or two each way


@dataclass(frozen=True)
class SourceView:
    """The observed frame the planes were found in, which every copy samples."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    depth: np.ndarray  # (H, W) float32 metric z-depth, 0 where unknown
    c2w: np.ndarray  # (4, 4)
    K: np.ndarray  # (3, 3)
    # on_plane's answers: a view's plane masks do not change from frame to frame
    _masks: dict[tuple[float, ...], np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    def on_plane(self, plane: RepeatPlane, depth_tol: float) -> np.ndarray:
        """(H, W) bool: the view's pixels whose depth is the plane's there, within depth_tol of it (relative)."""
        key = (*plane.normal, plane.offset, depth_tol)
        if key not in self._masks:
            H, W = self.depth.shape
            z = plane_depth([plane], self.c2w, self.K, H, W)[0]
            self._masks[key] = (z > 0) & (np.abs(self.depth - z) < depth_tol * z)
        return self._masks[key]

    def sample(self, points: np.ndarray, on_plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What the view shows at world points (N, 3) of a plane, bilinearly between pixel centres: colours
        (N, 3) and (N,) bool where it sees them there (the four pixels in view and on the plane, `on_plane`
        (H, W): not hidden)."""
        H, W = self.depth.shape
        w2c = np.linalg.inv(self.c2w)
        cam = points @ w2c[:3, :3].T + w2c[:3, 3]  # (N, 3)
        front = cam[:, 2] > 1e-3
        z = np.where(front, cam[:, 2], 1.0)
        u = cam[:, 0] / z * self.K[0, 0] + self.K[0, 2] - 0.5  # pixel centres at integers
        v = cam[:, 1] / z * self.K[1, 1] + self.K[1, 2] - 0.5
        u0, v0 = np.floor(u), np.floor(v)
        seen = front & (u0 >= 0) & (u0 < W - 1) & (v0 >= 0) & (v0 < H - 1)
        at = np.where(seen, v0 * W + u0, 0).astype(np.int64)  # (N,) the top-left pixel of the four
        fu, fv = (u - u0)[:, None], (v - v0)[:, None]
        rgb = self.rgb.reshape(-1, 3)
        mask = on_plane.reshape(-1)
        colour = np.zeros((len(points), 3))
        for du, dv, weight in ((0, 0, (1 - fu) * (1 - fv)), (1, 0, fu * (1 - fv)), (0, 1, (1 - fu) * fv),
                               (1, 1, fu * fv)):
            colour += weight * rgb[at + dv * W + du]
            seen &= mask[at + dv * W + du]
        return colour, seen


def planes_state(planes: list[RepeatPlane], source: SourceView) -> dict[str, np.ndarray]:
    """The planes and their source view as arrays (a session file's): (P, 4) normal and offset; (S, 4) plane
    index and shift; the view's rgb (H, W, 3), depth (H, W), pose (4, 4) and intrinsics (3, 3)."""
    rows = [[i, *shift] for i, p in enumerate(planes) for shift in p.shifts]
    return {'planes': np.array([[*p.normal, p.offset] for p in planes], np.float64).reshape(-1, 4),
            'shifts': np.array(rows, np.float64).reshape(-1, 4),
            'source_rgb': source.rgb, 'source_depth': source.depth, 'source_pose': source.c2w,
            'source_intrinsics': source.K}


def planes_from_state(state: dict[str, np.ndarray]) -> tuple[list[RepeatPlane], SourceView]:
    """planes_state's inverse; ValueError naming what is missing or malformed."""
    missing = {'planes', 'shifts', 'source_rgb', 'source_depth', 'source_pose', 'source_intrinsics'} - set(state)
    if missing:
        raise ValueError(f'repeat planes state lacks {", ".join(sorted(missing))}')
    planes, shifts = state['planes'], state['shifts']
    if planes.ndim != 2 or planes.shape[1] != 4 or shifts.ndim != 2 or shifts.shape[1] != 4:
        raise ValueError(f'repeat planes must be (P, 4) and shifts (S, 4), got {tuple(planes.shape)} and '
                         f'{tuple(shifts.shape)}')
    if not (np.isfinite(planes).all() and np.isfinite(shifts).all()):
        raise ValueError('repeat planes or shifts hold non-finite values')
    owner = shifts[:, 0].astype(np.int64)
    if len(owner) and (owner.min() < 0 or owner.max() >= len(planes) or (owner != shifts[:, 0]).any()):
        raise ValueError(f'repeat shifts name planes outside 0..{len(planes) - 1}')
    rgb, depth = state['source_rgb'], state['source_depth']
    pose, K = state['source_pose'], state['source_intrinsics']
    if rgb.ndim != 3 or rgb.shape != (*depth.shape, 3) or pose.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f'repeat source view must be rgb (H, W, 3), depth (H, W), pose (4, 4), intrinsics '
                         f'(3, 3), got {tuple(rgb.shape)}, {tuple(depth.shape)}, {tuple(pose.shape)}, '
                         f'{tuple(K.shape)}')
    if not all(np.isfinite(a).all() for a in (rgb, depth, pose, K)):
        raise ValueError('repeat source view holds non-finite values')
    source = SourceView(rgb.astype(np.float32), depth.astype(np.float32), pose.astype(np.float64),
                        K.astype(np.float64))
    return [RepeatPlane(row[:3].copy(), float(row[3]), tuple(shifts[owner == i, 1:].copy()))
            for i, row in enumerate(planes)], source


def pixel_rays(c2w: np.ndarray, K: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 3) world directions of each pixel's ray, scaled so that the camera z component is 1 (z-depth)."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return rays @ np.asarray(c2w)[:3, :3].T


def plane_depth(planes: list[RepeatPlane], c2w: np.ndarray, K: np.ndarray, height: int,
                width: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's nearest plane in front of the camera (the planes taken as the room's walls, seen from
    inside): z-depth (H, W), 0 where none, and the plane's index (H, W), -1 where none."""
    rays = pixel_rays(c2w, K, height, width)
    origin = np.asarray(c2w)[:3, 3]
    depth = np.full((height, width), np.inf)
    which = np.full((height, width), -1)
    for i, p in enumerate(planes):
        facing = p.normal @ origin + p.offset  # > 0 on the side the plane was seen from
        den = rays @ p.normal
        with np.errstate(divide='ignore', invalid='ignore'):
            t = -facing / den
        hit = (den < 0) & (facing > 0) & (t > 0) & (t < depth)
        depth = np.where(hit, t, depth)
        which = np.where(hit, i, which)
    return np.where(which >= 0, depth, 0.0), which


def fit_planes(xyz: np.ndarray, cfg: RepeatsConfig, rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """Sequential RANSAC: up to cfg.max_planes planes (n, d) of xyz (N, 3), each holding at least
    cfg.min_fraction of the points within cfg.plane_tol_m, largest first, refitted by least squares."""
    left = xyz[np.isfinite(xyz).all(1)]
    total = len(left)
    planes: list[tuple[np.ndarray, float]] = []
    while len(planes) < cfg.max_planes and len(left) >= 3:
        trios = left[rng.integers(len(left), size=(cfg.ransac_trials, 3))]  # (trials, 3 points, 3)
        normals = np.cross(trios[:, 1] - trios[:, 0], trios[:, 2] - trios[:, 0])
        length = np.linalg.norm(normals, axis=1)
        good = length > 1e-9
        if not good.any():
            break
        normals = normals[good] / length[good, None]
        offsets = -(normals * trios[good, 0]).sum(1)
        sample = left[rng.integers(len(left), size=min(len(left), 4096))]
        support = (np.abs(sample @ normals.T + offsets) < cfg.plane_tol_m).sum(0)  # (trials,)
        best = int(support.argmax())
        inliers = np.abs(left @ normals[best] + offsets[best]) < cfg.plane_tol_m
        if inliers.sum() < cfg.min_fraction * total:
            break
        pts = left[inliers]
        centre = pts.mean(0)
        normal = np.linalg.svd(pts - centre, full_matrices=False)[2][2]
        offset = -float(normal @ centre)
        planes.append((normal, offset))
        left = left[np.abs(left @ normal + offset) >= cfg.plane_tol_m]
    return planes


def plane_axes(normal: np.ndarray, walls: list[np.ndarray]) -> list[np.ndarray]:
    """The in-plane axes a period is looked for along (see the module's docstring); [] for a slanted plane."""
    if abs(normal @ UP) < 0.1:  # vertical
        along = np.cross(UP, normal)
        return [along / np.linalg.norm(along), UP.copy()]
    if abs(normal @ UP) > 0.95:  # horizontal
        if walls:
            along = np.cross(UP, walls[0])
            along /= np.linalg.norm(along)
            return [along, np.cross(UP, along)]
        return [np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])]
    return []


def repeat_period(points: np.ndarray, colours: np.ndarray, axis: np.ndarray, on_plane: np.ndarray,
                  rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray, K: np.ndarray,
                  cfg: RepeatsConfig) -> float | None:
    """The period (m) along `axis` at which the observed colours of a plane repeat, or None.

    points (N, 3) on the plane with their colours (N, 3) float; on_plane (H, W) bool: the frame's pixels on it.
    Each candidate period P moves every point by P along the axis and compares its colour with what the frame
    shows there, where the frame sees that place of the plane. P is kept when its mean colour difference is
    under cfg.period_score times the median over all candidates (a texture that does not repeat has none such).
    """
    H, W = depth.shape
    w2c = np.linalg.inv(c2w)
    periods = np.arange(cfg.min_period_m, cfg.max_period_m, cfg.period_step_m)  # (P,)
    # the moved points in the camera, linear in the period: (P, N) per coordinate
    cam0 = (points @ w2c[:3, :3].T + w2c[:3, 3]).astype(np.float32)  # (N, 3)
    step = (w2c[:3, :3] @ axis).astype(np.float32)  # (3,)
    x, y, z = (cam0[None, :, i] + periods.astype(np.float32)[:, None] * step[i] for i in range(3))
    front = z > 1e-3
    zs = np.where(front, z, 1.0)
    u = np.floor(x / zs * K[0, 0] + K[0, 2]).astype(np.int64)
    v = np.floor(y / zs * K[1, 1] + K[1, 2]).astype(np.int64)
    inside = front & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    at = np.where(inside, v * W + u, 0)  # (P, N) flat pixel index
    seen = inside & on_plane.reshape(-1)[at] & (np.abs(depth.reshape(-1)[at] - z) < cfg.depth_tol * z)
    diff = np.abs(rgb.reshape(-1, 3).astype(np.float32)[at] - colours.astype(np.float32)[None]).mean(-1)  # (P, N)
    count = seen.sum(1)
    enough = count >= max(cfg.min_pairs, cfg.min_pair_fraction * len(points))
    if enough.sum() < 3:
        return None
    score = np.where(enough, (diff * seen).sum(1) / np.maximum(count, 1), np.inf)
    best, median = float(score.min()), float(np.median(score[enough]))
    if best >= cfg.period_score * median:
        return None
    # a texture repeating every P repeats every 2P too, and a shift of a whole number of pixels samples it more
    # exactly: the shortest period within PERIOD_TIE of the way from the best score to the median
    level = np.isfinite(score) & (score <= best + PERIOD_TIE * (median - best))
    start = int(np.flatnonzero(level)[0])
    if start == 0:  # no dip: a smooth surface matches best at the shortest shift, and repeats at none
        return None
    stop = start + (int(np.flatnonzero(~level[start:])[0]) if not level[start:].all() else len(level) - start)
    basin = score[start:stop]
    lowest = np.flatnonzero(basin <= basin.min() + 1e-9)  # a flat bottom: its middle
    first = start + int(lowest[len(lowest) // 2])
    return float(periods[first])


def _shared(found: list[tuple[np.ndarray, float]], periods: list[list[float | None]]) -> list[list[float | None]]:
    """A plane without a period along an axis takes the one found along that axis on a plane of the same
    orientation (vertical or horizontal): a room's walls share their paper, its floor its tiles."""
    out = [list(p) for p in periods]
    for vertical in (True, False):
        same = [i for i, (n, _) in enumerate(found) if (abs(n @ UP) < 0.1) == vertical and periods[i]]
        for axis in range(2):
            known = [p for p in (periods[i][axis] for i in same) if p is not None]
            if known:
                for i in same:
                    if out[i][axis] is None:
                        out[i][axis] = float(np.median(known))
    return out


class SurfaceRepeats:
    """The repeating planes of an observed frame, and the fill of uncovered pixels from them."""

    def __init__(self, planes: list[RepeatPlane], source: SourceView, cfg: RepeatsConfig) -> None:
        self.planes = planes
        self.source = source
        self.cfg = cfg

    @classmethod
    def from_frame(cls, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray, K: np.ndarray, cfg: RepeatsConfig,
                   seed: int = 0) -> SurfaceRepeats:
        """Planes and periods of one observed frame: rgb (H, W, 3) float in [0, 1], metric z-depth (H, W)."""
        H, W = depth.shape
        c2w = np.asarray(c2w, np.float64)
        ok = (depth > 0) & np.isfinite(depth)
        xyz = pixel_rays(c2w, K, H, W) * depth[..., None] + c2w[:3, 3]  # (H, W, 3)
        rng = np.random.default_rng(seed)
        found = fit_planes(xyz[ok], cfg, rng)
        # the room's shell: planes with (almost) nothing observed behind them; a piece of furniture's face,
        # extended, has the walls behind it
        pts = xyz[ok]
        eye = c2w[:3, 3]
        found = [(n, d) for n, d in found
                 if (np.sign(n @ eye + d) * (pts @ n + d) < -cfg.plane_tol_m).mean() < cfg.behind_fraction]
        walls = [n for n, _ in found if abs(n @ UP) < 0.1]
        periods: list[list[float | None]] = []
        for normal, offset in found:
            on_plane = ok & (np.abs(xyz @ normal + offset) < cfg.plane_tol_m)
            idx = np.flatnonzero(on_plane)
            pick = rng.choice(idx, size=min(len(idx), cfg.period_points), replace=False)
            pts, cols = xyz.reshape(-1, 3)[pick], rgb.reshape(-1, 3)[pick]
            periods.append([repeat_period(pts, cols, axis, on_plane, rgb, depth, c2w, K, cfg)
                            for axis in plane_axes(normal, walls)])
        if cfg.share_periods:
            periods = _shared(found, periods)
        planes = []
        for (normal, offset), found_periods in zip(found, periods):
            shifts = [k * period * axis for axis, period in zip(plane_axes(normal, walls), found_periods)
                      if period is not None for k in (1, -1, 2, -2)]
            if normal @ c2w[:3, 3] + offset < 0:
                normal, offset = -normal, -offset
            planes.append(RepeatPlane(normal, offset, tuple(shifts)))
        source = SourceView(np.asarray(rgb, np.float32), np.where(ok, depth, 0).astype(np.float32), c2w,
                            np.asarray(K, np.float64))
        return cls(planes, source, cfg)

    def fill(self, rgb_seen: np.ndarray, depth_seen: np.ndarray, c2w: np.ndarray,
             K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The pixels no observation covers (rgb_seen (H, W, 3) float and depth_seen (H, W) metres of what is
        covered, depth 0 elsewhere) that lie on a repeating plane, next to that plane's covered pixels, whose
        place one or two periods along it the source view sees, and where the covered pixels beside them agree
        with their own places that far along where the source sees those (cfg.local_score; a doorway or a seam
        the period does not cross fails there): rgb (H, W, 3) float, depth (H, W), filled (H, W) bool (a subset
        of the uncovered)."""
        holes = ~(depth_seen > 0)
        H, W = holes.shape
        rgb, depth = np.zeros((H, W, 3)), np.zeros((H, W))
        filled = np.zeros((H, W), bool)
        if not holes.any() or holes.all() or not any(p.shifts for p in self.planes):
            return rgb, depth, filled  # nothing to fill, or nothing covered for a hole to continue
        z, which = plane_depth(self.planes, c2w, K, H, W)
        # a hole continues the plane its nearest covered pixel lies on (an occluder beside it: not filled)
        on_plane = ~holes & (which >= 0) & (np.abs(depth_seen - z) < self.cfg.depth_tol * z)
        distance, nearest = cv2.distanceTransformWithLabels(holes.astype(np.uint8), cv2.DIST_L2, 5,
                                                            labelType=cv2.DIST_LABEL_PIXEL)
        zero_at = np.flatnonzero(~holes.reshape(-1))  # labels count the covered pixels in raster order, from 1
        beside = zero_at[np.clip(nearest.reshape(-1) - 1, 0, len(zero_at) - 1)].reshape(H, W)  # flat index
        todo = holes & (which >= 0) & (np.where(on_plane, which, -1).reshape(-1)[beside] == which)
        if self.cfg.reach_px > 0:  # farther into a hole, a doorway or a corner the start never saw is likelier
            todo &= distance <= self.cfg.reach_px
        contrast = None  # (H, W) the texture's local variation, for the local check
        if self.cfg.local_score > 0:
            contrast = np.abs(rgb_seen - cv2.blur(rgb_seen, (LOCAL_WINDOW_PX, LOCAL_WINDOW_PX))).mean(-1)
        xyz = pixel_rays(c2w, K, H, W) * z[..., None] + np.asarray(c2w)[:3, 3]  # (H, W, 3) on each pixel's plane
        for i, plane in enumerate(self.planes):
            mine = todo & (which == i)
            if not mine.any() or not plane.shifts:
                continue
            # the holes and, for the local check, the covered pixels on the plane
            asked = mine | (on_plane & (which == i)) if self.cfg.local_score > 0 else mine
            source_plane = self.source.on_plane(plane, self.cfg.depth_tol)  # (H, W) of the source view
            for shift in plane.shifts:
                if not mine.any():
                    break
                shifted = np.zeros((H, W, 3))  # (H, W, 3) the source's colour a shift back along the plane
                there = np.zeros((H, W), bool)
                shifted[asked], there[asked] = self.source.sample(xyz[asked] - shift, source_plane)
                take = mine & there
                if contrast is not None:
                    take &= self._agrees(rgb_seen, contrast, shifted,
                                         on_plane & (which == i) & there).reshape(-1)[beside]
                rgb[take], depth[take] = shifted[take], z[take]
                filled |= take
                mine &= ~take
        return rgb, depth, filled

    def _agrees(self, rgb_seen: np.ndarray, contrast: np.ndarray, shifted: np.ndarray,
                pair: np.ndarray) -> np.ndarray:
        """(H, W) bool: where the covered pixels `pair` of a plane, in a window about each pixel, differ from
        their places a shift along (`shifted`) by at most cfg.local_score of the texture's local variation
        (`contrast`), or the window holds none of them (nothing there refutes the shift)."""
        window = (LOCAL_WINDOW_PX, LOCAL_WINDOW_PX)
        weight = pair.astype(np.float64)
        differ = cv2.blur(np.abs(rgb_seen - shifted).mean(-1) * weight, window)
        paired = cv2.blur(weight, window) > 0
        return (differ <= self.cfg.local_score * cv2.blur(contrast * weight, window)) | ~paired
