"""Hand conditioning: 21 MediaPipe-layout keypoints drawn as a pose video (the paper's hand stream).

MediaPipe's landmarks: 0 wrist; 1-4 thumb CMC, MCP, IP, TIP; 5-8 index MCP, PIP, DIP, TIP; 9-12 middle;
13-16 ring; 17-20 pinky. The skeleton is drawn per frame with one colour per finger (and one for the palm), bones
as lines and joints as dots, by a vectorised distance field in torch (no drawing library): a pixel is painted
when its centre lies within half the line width of a bone or within the dot radius of a joint. Absent hands
(all keypoints invisible) give an all-zero frame, the "no hand" signal.
"""

from __future__ import annotations

import numpy as np
import torch

NUM_KEYPOINTS = 21

# MediaPipe's HAND_CONNECTIONS, grouped by finger: palm, thumb, index, middle, ring, pinky.
PALM_BONES = ((0, 1), (0, 5), (5, 9), (9, 13), (13, 17), (0, 17))
FINGER_BONES = (
    ((1, 2), (2, 3), (3, 4)),
    ((5, 6), (6, 7), (7, 8)),
    ((9, 10), (10, 11), (11, 12)),
    ((13, 14), (14, 15), (15, 16)),
    ((17, 18), (18, 19), (19, 20)),
)
HAND_BONES: tuple[tuple[int, int], ...] = PALM_BONES + tuple(b for finger in FINGER_BONES for b in finger)

# RGB in [0, 1]: palm grey-white, then thumb red, index orange-yellow, middle green, ring cyan-blue, pinky magenta.
PART_COLORS = torch.tensor([
    [0.85, 0.85, 0.85],
    [1.00, 0.20, 0.20],
    [1.00, 0.75, 0.10],
    [0.20, 0.90, 0.20],
    [0.15, 0.55, 1.00],
    [0.85, 0.25, 1.00],
])
BONE_PART = torch.tensor([0] * len(PALM_BONES) + [1 + f for f, finger in enumerate(FINGER_BONES) for _ in finger])
# Each joint takes its finger's colour (the wrist the palm's), brightened so dots stand out on their bones.
JOINT_PART = torch.tensor([0] + [1 + (j - 1) // 4 for j in range(1, NUM_KEYPOINTS)])
JOINT_COLORS = 0.5 + 0.5 * PART_COLORS[JOINT_PART]  # (21, 3)
BONE_COLORS = PART_COLORS[BONE_PART]  # (21, 3)


def validate_keypoints(kp: np.ndarray, name: str = 'hand_keypoints') -> np.ndarray:
    """Return kp as a float64 (21, 3) array, or raise ValueError naming `name` (wrong size, not finite)."""
    if isinstance(kp, torch.Tensor):
        kp = kp.detach().cpu().numpy()
    try:
        arr = np.asarray(kp, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a numeric (21, 3) array, got {type(kp).__name__}') from None
    if arr.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f'{name} must have shape ({NUM_KEYPOINTS}, 3), got {arr.shape}')
    if not np.all(np.isfinite(arr)):
        raise ValueError(f'{name} must be finite (no NaN or inf)')
    return arr


def project_keypoints(kp_cam: np.ndarray | torch.Tensor, K: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Camera-frame keypoints (..., 21, 3) (OpenCV axes, metres) -> pixel coordinates (..., 21, 2).

    Coordinates are continuous with pixel (u, v) centred at (u + 0.5, v + 0.5), as camera.project. Points at or
    behind the camera plane (z <= 0) get NaN: they are not visible. Returns the input's array type.
    """
    is_torch = isinstance(kp_cam, torch.Tensor)
    p: torch.Tensor = kp_cam if isinstance(kp_cam, torch.Tensor) else torch.from_numpy(np.asarray(kp_cam, np.float64))
    if p.ndim < 2 or p.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f'kp_cam must have shape (..., {NUM_KEYPOINTS}, 3), got {tuple(p.shape)}')
    k = torch.as_tensor(K, dtype=p.dtype, device=p.device)
    if k.shape != (3, 3):
        raise ValueError(f'K must have shape (3, 3), got {tuple(k.shape)}')
    uvw = p @ k.T  # (..., 21, 3)
    z = p[..., 2:3]
    uv = uvw[..., :2] / torch.where(z > 0, z, torch.ones_like(z))
    uv = torch.where(z > 0, uv, torch.full_like(uv, torch.nan))
    return uv if is_torch else uv.numpy()


def keypoint_visibility(kp2d: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 21, 2) pixels -> (..., 21) bool: finite and inside the image."""
    u, v = kp2d[..., 0], kp2d[..., 1]
    return torch.isfinite(u) & torch.isfinite(v) & (u >= 0) & (u < width) & (v >= 0) & (v < height)


def default_thickness(height: int, width: int) -> float:
    """Bone line width in pixels: 2 px at 96 rows, growing with the image so the codec still sees it."""
    return max(1.5, min(height, width) / 48)


def _segment_distance2(pix: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared distance from pixel centres pix (P, 2) to segments a -> b (S, 2): (P, S).

    Written per coordinate: reductions over a trailing axis of size 2 are slow on CPU.
    """
    px, py = pix[:, :1], pix[:, 1:]  # (P, 1)
    ax, ay, abx, aby = a[:, 0], a[:, 1], b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]  # (S,)
    dx, dy = px - ax, py - ay  # (P, S)
    t = ((dx * abx + dy * aby) / (abx * abx + aby * aby).clamp_min(1e-12)).clamp(0.0, 1.0)  # along the segment
    ex, ey = dx - t * abx, dy - t * aby
    return ex * ex + ey * ey


def pose_video(keypoints2d: torch.Tensor, visible: torch.Tensor, height: int, width: int,
               thickness: float | None = None, joint_radius: float | None = None) -> torch.Tensor:
    """Draw the hand skeleton per frame: (T, 21, 2) pixels, (T, 21) bool -> (T, 3, H, W) float32 in [0, 1].

    Bones are lines `thickness` pixels wide, one colour per finger; joints are dots of `joint_radius` drawn over
    them. Invisible keypoints, and bones touching one, are not drawn. Keypoints must be finite where visible.
    """
    if not isinstance(keypoints2d, torch.Tensor) or tuple(keypoints2d.shape[-2:]) != (NUM_KEYPOINTS, 2) \
            or keypoints2d.ndim != 3:
        shape = tuple(keypoints2d.shape) if isinstance(keypoints2d, torch.Tensor) else type(keypoints2d).__name__
        raise ValueError(f'keypoints2d must be a tensor of shape (T, {NUM_KEYPOINTS}, 2), got {shape}')
    if not keypoints2d.is_floating_point():
        raise ValueError(f'keypoints2d must be floating point, got {keypoints2d.dtype}')
    T = keypoints2d.shape[0]
    if not isinstance(visible, torch.Tensor) or visible.shape != (T, NUM_KEYPOINTS):
        shape = tuple(visible.shape) if isinstance(visible, torch.Tensor) else type(visible).__name__
        raise ValueError(f'visible must be a tensor of shape ({T}, {NUM_KEYPOINTS}), got {shape}')
    if visible.dtype != torch.bool:
        raise ValueError(f'visible must be a bool tensor, got {visible.dtype}')
    if height <= 0 or width <= 0:
        raise ValueError(f'height and width must be positive, got {height}x{width}')
    if not torch.isfinite(keypoints2d[visible]).all():
        raise ValueError('keypoints2d must be finite where visible')
    thickness = default_thickness(height, width) if thickness is None else float(thickness)
    joint_radius = 0.75 * thickness if joint_radius is None else float(joint_radius)
    device = keypoints2d.device
    video = torch.zeros(T, 3, height, width, device=device)
    bones = torch.tensor(HAND_BONES, device=device)  # (S, 2)
    bone_colors, joint_colors = BONE_COLORS.to(device), JOINT_COLORS.to(device)
    reach = max(thickness / 2, joint_radius) + 1.0
    for t in range(T):  # per frame, only the pixels of the hand's bounding box are visited
        vis = visible[t]
        if not vis.any():
            continue
        kp = keypoints2d[t].float()  # (21, 2)
        lo = (kp[vis].min(0).values - reach).floor().clamp_min(0).long()
        hi = (kp[vis].max(0).values + reach).ceil().long()
        u0, v0 = int(lo[0]), int(lo[1])
        u1, v1 = min(int(hi[0]), width), min(int(hi[1]), height)
        if u0 >= u1 or v0 >= v1:
            continue  # the whole hand lies off the image
        vv, uu = torch.meshgrid(torch.arange(v0, v1, device=device, dtype=torch.float32) + 0.5,
                                torch.arange(u0, u1, device=device, dtype=torch.float32) + 0.5, indexing='ij')
        pix = torch.stack([uu, vv], -1).view(-1, 2)  # (P, 2) pixel centres of the box
        crop = torch.zeros(pix.shape[0], 3, device=device)
        bone_on = vis[bones[:, 0]] & vis[bones[:, 1]]  # (S,)
        if bone_on.any():
            on = bones[bone_on]
            d2 = _segment_distance2(pix, kp[on[:, 0]], kp[on[:, 1]])  # (P, S')
            best, which = d2.min(dim=1)  # the nearest drawn bone paints the pixel
            hit = best <= (thickness / 2) ** 2
            crop[hit] = bone_colors[bone_on][which[hit]]
        jx, jy = kp[vis, 0], kp[vis, 1]  # joints are drawn over the bones
        d2 = (pix[:, :1] - jx) ** 2 + (pix[:, 1:] - jy) ** 2  # (P, J)
        best, which = d2.min(dim=1)
        hit = best <= joint_radius**2
        crop[hit] = joint_colors[vis][which[hit]]
        video[t, :, v0:v1, u0:u1] = crop.T.reshape(3, v1 - v0, u1 - u0)
    return video


FINGER_WIDTH_M = 0.02  # a finger's width, for the hand's image footprint
MIN_HAND_PIXELS = 8  # fewer pixels of the hand in view: its colour is unknown


HAND_COLOUR_AREAS = ('hull', 'silhouette')


def hand_colour(rgb: np.ndarray, kp_cam: np.ndarray, K: np.ndarray, where: str = 'hull') -> np.ndarray | None:
    """The hand's colour in a frame that shows it: the median RGB in [0, 1] over the convex hull of its projected
    keypoints (no margin: mostly the hand itself), or over its `silhouette` (less of what the hand holds or
    stands over) -> (3,), or None when too little of it is in view. rgb (H, W, 3) uint8."""
    if where not in HAND_COLOUR_AREAS:
        raise ValueError(f'the hand colour is read over one of {", ".join(HAND_COLOUR_AREAS)}, got {where!r}')
    H, W = rgb.shape[:2]
    inside = hand_region(kp_cam, K, H, W, margin=0.0) if where == 'hull' else hand_silhouette(kp_cam, K, H, W)
    if inside.sum() < MIN_HAND_PIXELS:
        return None
    return np.median(rgb[inside].astype(np.float32), axis=0) / 255


def _grown(mask: np.ndarray, px: int) -> np.ndarray:
    """(H, W) mask -> (H, W) bool: grown by a disc of `px` pixels' radius."""
    import cv2

    if px <= 0:
        return mask.astype(bool)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), disc).astype(bool)


def hand_region(kp_cam: np.ndarray, K: np.ndarray, height: int, width: int, margin: float = 1.5) -> np.ndarray:
    """Where the hand is in the image: the convex hull of its projected keypoints (those in front of the camera),
    grown by `margin` finger widths at the hand's depth -> (H, W) bool. The scene memory leaves it out (the hand
    is not static scene) and the refiner draws it."""
    import cv2

    kp = validate_keypoints(kp_cam)
    front = kp[:, 2] > 1e-3
    out: np.ndarray = np.zeros((height, width), np.uint8)
    if front.sum() < 2:
        return out.astype(bool)
    uv = np.asarray(project_keypoints(kp[front], np.asarray(K, np.float64)))
    uv = np.clip(uv, -4 * (width + height), 4 * (width + height))  # far off-image points stay drawable
    hull = cv2.convexHull(np.round(uv - 0.5).astype(np.int32))
    cv2.fillConvexPoly(out, hull, 1)
    return _grown(out, int(np.ceil(margin * K[0, 0] * FINGER_WIDTH_M / float(np.median(kp[front, 2])))))


PALM_JOINTS = (0, 1, 5, 9, 13, 17)  # wrist, thumb CMC and the four MCPs: the palm's outline


def hand_silhouette(kp_cam: np.ndarray, K: np.ndarray, height: int, width: int,
                    finger_radius_m: float = FINGER_WIDTH_M / 2, margin_px: int = 0) -> np.ndarray:
    """Where a hand of these keypoints covers the image: a capsule of a finger's radius along every bone (its
    pixel radius from the bone's depth) and the palm's polygon grown by that radius -> (H, W) bool, all of it
    grown by `margin_px` pixels. A generic hand's shape, for conditioning: what the hand looks like stays the
    model's to draw."""
    import cv2

    kp = validate_keypoints(kp_cam)
    out: np.ndarray = np.zeros((height, width), bool)
    front = kp[:, 2] > 1e-3
    if front.sum() < 2:
        return out
    K = np.asarray(K, np.float64)
    uv = np.clip(np.asarray(project_keypoints(np.where(front[:, None], kp, 1.0), K)), -4 * (width + height),
                 4 * (width + height))  # (21, 2); rows behind the camera are not used
    radius = K[0, 0] * finger_radius_m / np.clip(kp[:, 2], 1e-3, None)  # (21,) pixels at each joint's depth
    bones = [(a, b) for a, b in HAND_BONES if front[a] and front[b]]
    if bones:
        a, b = np.array(bones).T
        r = 0.5 * (radius[a] + radius[b])  # (S,)
        reach = float(r.max()) + 1.0
        lo = np.floor(np.minimum(uv[a], uv[b]).min(0) - reach).clip(0).astype(int)
        hi = np.ceil(np.maximum(uv[a], uv[b]).max(0) + reach).astype(int)
        u0, v0, u1, v1 = int(lo[0]), int(lo[1]), min(int(hi[0]), width), min(int(hi[1]), height)
        if u0 < u1 and v0 < v1:
            vv, uu = np.meshgrid(np.arange(v0, v1) + 0.5, np.arange(u0, u1) + 0.5, indexing='ij')
            pix = torch.from_numpy(np.stack([uu, vv], -1).reshape(-1, 2))  # (P, 2) pixel centres of the box
            d2 = _segment_distance2(pix, torch.from_numpy(uv[a]), torch.from_numpy(uv[b]))  # (P, S)
            inside = (d2 <= torch.from_numpy(r**2)).any(1).numpy()
            out[v0:v1, u0:u1] = inside.reshape(v1 - v0, u1 - u0)
    palm = [j for j in PALM_JOINTS if front[j]]
    if len(palm) >= 3:
        poly: np.ndarray = np.zeros((height, width), np.uint8)
        cv2.fillConvexPoly(poly, cv2.convexHull(np.round(uv[palm] - 0.5).astype(np.int32)), 1)
        out |= _grown(poly, int(round(float(np.median(radius[palm])))))
    return _grown(out, margin_px)
