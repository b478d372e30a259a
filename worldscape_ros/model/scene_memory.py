"""The persistent scene memory: every frame the session observed or imagined, fused into one bounded 3D point
store, rendered into each new target camera in pixel space.

A frame is committed as coloured points: each pixel with a depth splits into `supersample`^2 sub-pixel
points (so magnification up to that factor leaves no cracks), placed in the world by the frame's pose.
Points are deduplicated on a voxel grid with the older point winning, so standing still or looking again at a
place adds nothing: the store grows with the area explored, not with time. Over its byte budget, the least
trusted points go first (imagined before observed), the oldest among equals.

Each point carries how far it is trusted: OBSERVED for a given frame (the start frame, a reset image), IMAGINED
for what the model generated. The render gives, per target pixel: RGB, z-depth, coverage, trust and the frame
index that made the point (its age). The model keeps what the render covers and imagines the rest; what it
imagines is committed, so the next look at that place is the same.

Observed points with a measured depth also hold the lighting they were seen under (scene.headlight,
headlight.py), so the render lights them again for each camera. The points' columns: scene_points.py.

Conventions (camera.py): camera-to-world 4x4 poses with OpenCV axes, pixel centres at +0.5, metric z-depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldscape_ros.model.camera import check_intrinsics, check_rigid
from worldscape_ros.model.config import SceneConfig
from worldscape_ros.model.headlight import normals, relit
from worldscape_ros.model.repeats import RepeatPlane, SourceView, planes_from_state, planes_state
from worldscape_ros.model.reproject import _rigid_inverse, fill_one_pixel_cracks, within_cracks, zbuffer_by_key
from worldscape_ros.model.scene_index import VOXEL_BITS, VOXEL_OFFSET, CellIndex
from worldscape_ros.model.scene_points import ScenePoints, SortedPoints, facings, held_lighting, unique_first

OBSERVED = 1.0  # trust of a point from a given frame
IMAGINED = 0.5  # trust of a point the model generated
BYTES_PER_POINT = 3 * 4 + 3 + 1 + 4 + 4  # xyz float32, rgb uint8, trust uint8, born int32, lighting int8
SIDE_FRACTION = 0.05  # the side store joins the main one when it holds this fraction of the budget


@dataclass
class SceneRender:
    """The scene memory seen from one target camera."""

    rgb: torch.Tensor  # (3, H, W) float in [0, 1]; 0 where uncovered
    depth: torch.Tensor  # (H, W) metres; 0 where uncovered
    mask: torch.Tensor  # (H, W) bool: covered
    trust: torch.Tensor  # (H, W) float: OBSERVED, IMAGINED, 0 where uncovered
    born: torch.Tensor  # (H, W) long: the frame index that made the pixel's point, -1 where uncovered


class SceneMemory:
    """A voxel-deduplicated coloured point store of the session's scene, within a byte budget.

    The store is sorted by voxel key (for the lookups that deduplicate). A frame's new points go to a small side
    store, sorted too, which joins the main one once it holds `side_fraction` of the budget: a commit's cost
    follows the side store, and the merge's cost (linear in the store) is shared by the commits between merges. A coarse
    index of the main store's cells lets the render project only the cells in view. Whoever reads the points
    (points, take, state, the xyz... attributes) sees one sorted store: the side store joins first.
    """

    def __init__(self, config: SceneConfig | None = None, device: str | torch.device = 'cpu', *,
                 side_fraction: float = SIDE_FRACTION) -> None:
        self.config = config or SceneConfig()
        if not self.config.voxel_m > 0:
            raise ValueError(f'scene memory voxel_m must be positive, got {self.config.voxel_m}')
        if self.config.supersample < 1:
            raise ValueError(f'scene memory supersample must be >= 1, got {self.config.supersample}')
        self.max_points = int(self.config.budget_mb * 2**20) // BYTES_PER_POINT
        if self.max_points < 1:
            raise ValueError(f'scene memory budget_mb {self.config.budget_mb} holds no point')
        if not side_fraction >= 0:
            raise ValueError(f'scene memory side_fraction must be >= 0, got {side_fraction}')
        self.side_fraction = side_fraction
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        self._main = SortedPoints.empty(self.device)
        self._side = SortedPoints.empty(self.device)  # new points not yet merged into the main store
        self._index = CellIndex.built(self._main.keys)  # the main store's cells
        self.pruned = 0  # points dropped for the budget since reset
        self._observed_sum = torch.zeros(3, dtype=torch.float64, device=self.device)  # of the observed points' rgb
        self._observed_count = 0
        self.repeat_planes: list[RepeatPlane] = []  # the observed start's repeating planes (repeats.py)
        self.repeat_source: SourceView | None = None  # and the start frame they copy from

    def __len__(self) -> int:
        return len(self._main) + len(self._side)

    @property
    def nbytes(self) -> int:
        return len(self) * BYTES_PER_POINT

    @property
    def xyz(self) -> torch.Tensor:
        """(N, 3) world metres, in voxel key order (the store's own tensor: do not modify it)."""
        return self._joined().xyz

    @property
    def rgb(self) -> torch.Tensor:
        """(N, 3) uint8."""
        return self._joined().rgb

    @property
    def trust(self) -> torch.Tensor:
        """(N,) uint8: trust * 255."""
        return self._joined().trust

    @property
    def born(self) -> torch.Tensor:
        """(N,) int32: the frame index that made each point."""
        return self._joined().born

    def observed_colour(self) -> torch.Tensor | None:
        """(3,) float in [0, 1]: the mean colour of the observed points (None: none held), kept as a running
        sum over what joins and leaves the store."""
        if not self._observed_count:
            return None
        return (self._observed_sum / (255 * self._observed_count)).float()

    def _count_observed(self, rgb: torch.Tensor, trust: torch.Tensor, sign: int) -> None:
        """Add (sign 1) or remove (-1) points' colours (rgb (n, 3) uint8, trust (n,) uint8) to the observed sum."""
        seen = trust == round(OBSERVED * 255)
        self._observed_sum += sign * rgb[seen].sum(0, dtype=torch.float64)
        self._observed_count += sign * int(seen.sum())

    # ---- commit ----------------------------------------------------------------------------------------
    def commit(self, rgb: torch.Tensor, depth: torch.Tensor, c2w: np.ndarray | torch.Tensor, K: np.ndarray,
               mask: torch.Tensor | None = None, trust: float = IMAGINED, frame_index: int = 0,
               depth_measured: bool = True) -> int:
        """Add a frame's pixels (where `mask`, default all) with their depth; return the points added.

        rgb (3, H, W) float in [0, 1], depth (H, W) metres (<= 0 or non-finite: no point), c2w (4, 4),
        K (3, 3). Voxels already held keep their point (the older point wins). With scene.headlight, observed
        points whose depth was measured (not `depth_measured` False: the depth head's guess) hold their normals
        and are drawn lit again for other cameras; the rest are drawn as committed.
        """
        if rgb.ndim != 3 or rgb.shape[0] != 3:
            raise ValueError(f'rgb must be (3, H, W), got {tuple(rgb.shape)}')
        H, W = rgb.shape[1:]
        if depth.shape != (H, W):
            raise ValueError(f'depth must be ({H}, {W}), got {tuple(depth.shape)}')
        if mask is not None and mask.shape != (H, W):
            raise ValueError(f'mask must be ({H}, {W}), got {tuple(mask.shape)}')
        if not 0 < trust <= 1:
            raise ValueError(f'trust must be in (0, 1], got {trust}')
        check_intrinsics(np.asarray(K))
        c2w_t = torch.as_tensor(np.asarray(c2w, dtype=np.float64)).float().to(self.device)
        check_rigid(c2w_t, 'c2w')
        s = self.config.supersample
        dev = self.device
        z = depth.float().to(dev)
        ok = torch.isfinite(z) & (z > 0) & (z <= self.config.max_depth_m)
        if mask is not None:
            ok &= mask.to(dev)
        if not ok.any():
            return 0
        v_idx, u_idx = ok.nonzero(as_tuple=True)  # (M,) pixels to commit
        offsets = (torch.arange(s, device=dev, dtype=torch.float32) + 0.5) / s  # sub-pixel centres
        du, dv = torch.meshgrid(offsets, offsets, indexing='xy')
        u = (u_idx[:, None].float() + du.reshape(1, -1)).reshape(-1)  # (M * s^2,)
        v = (v_idx[:, None].float() + dv.reshape(1, -1)).reshape(-1)
        zz = z[v_idx, u_idx].repeat_interleave(s * s)
        Kt = torch.as_tensor(np.asarray(K, dtype=np.float64)).float().to(dev)
        x_cam = torch.stack([(u - Kt[0, 2]) / Kt[0, 0] * zz, (v - Kt[1, 2]) / Kt[1, 1] * zz, zz])  # (3, P)
        xyz = (c2w_t[:3, :3] @ x_cam + c2w_t[:3, 3:]).T  # (P, 3) world
        colours = (rgb.float().clamp(0, 1) * 255).round().to(torch.uint8).to(dev)[:, v_idx, u_idx].T
        colours = colours.repeat_interleave(s * s, dim=0)  # (P, 3)
        P = xyz.shape[0]
        lighting = torch.zeros(P, 4, dtype=torch.int8, device=dev)  # unknown: drawn as seen
        # A guessed depth (an imagined frame's, an RGB-only start's) is too rough for normals: drawn as committed
        if self.config.headlight > 0 and trust == OBSERVED and depth_measured:
            normal = (c2w_t[:3, :3] @ normals(torch.where(ok, z, 0.0), Kt)[:, v_idx, u_idx]).T  # (M, 3) world
            lighting = held_lighting(normal, c2w_t[:3, 2]).repeat_interleave(s * s, dim=0)
        return self._insert(xyz, colours, torch.full((P,), round(trust * 255), dtype=torch.uint8, device=dev),
                            torch.full((P,), frame_index, dtype=torch.int32, device=dev), lighting)

    def _voxel_keys(self, xyz: torch.Tensor) -> torch.Tensor:
        cell = torch.floor(xyz / self.config.voxel_m).long() + VOXEL_OFFSET  # +-2 km at 2 mm within 21 bits
        cell = cell.clamp(0, (1 << VOXEL_BITS) - 1)
        return (cell[:, 0] << 2 * VOXEL_BITS) | (cell[:, 1] << VOXEL_BITS) | cell[:, 2]

    def _insert(self, xyz: torch.Tensor, colours: torch.Tensor, trust: torch.Tensor, born: torch.Tensor,
                lighting: torch.Tensor) -> int:
        """xyz (P, 3), colours (P, 3) uint8, trust (P,) uint8 (trust * 255), born (P,) int32, lighting (P, 4)
        int8."""
        keys = self._voxel_keys(xyz)
        # one point per new voxel (the first sub-pixel sample), and none where either store already has one
        keys, first = unique_first(keys)
        fresh = self._main.lacks(keys) & self._side.lacks(keys)
        keys, first = keys[fresh], first[fresh]
        n = len(keys)
        if not n:
            return 0
        new = SortedPoints(xyz[first], colours[first], trust[first], born[first], lighting[first], keys)
        self._side = self._side.merged(new)[0]
        self._count_observed(colours[first], trust[first], 1)
        if len(self._side) > self.side_fraction * self.max_points:
            self._join()
        self._prune()
        return n

    def _join(self) -> None:
        """Merge the side store into the main one, and its points into the cell index."""
        if not len(self._side):
            return
        self._main, at_old, at_new = self._main.merged(self._side)
        self._index = self._index.merged(at_old, self._side.keys, at_new)
        self._side = SortedPoints.empty(self.device)

    def _joined(self) -> SortedPoints:
        self._join()
        return self._main

    def _keep(self, keep: torch.Tensor) -> None:
        """Keep the main store's entries where `keep` (N,) bool is true (removing entries keeps it sorted)."""
        self._count_observed(self._main.rgb[~keep], self._main.trust[~keep], -1)
        self._index = self._index.kept(keep)
        self._main = self._main.at(keep)

    def _prune(self) -> None:
        if len(self) <= self.max_points:
            return
        # least trusted first, oldest first among equals; down to 90% of the budget, so pruning (a sort of the
        # store) happens once per tenth of the budget, not at every commit. Ties go as the sort leaves them in
        # the whole store's voxel key order, so the side store joins first.
        main = self._joined()
        target = int(0.9 * self.max_points)
        over = len(main) - target
        score = main.trust.long() * (1 << 32) + main.born.long()
        keep = torch.zeros(len(main), dtype=torch.bool, device=self.device)
        self._keep(keep.index_fill_(0, torch.argsort(score, descending=True)[:target], True))
        self.pruned += over

    # ---- take out and put back -----------------------------------------------------------------------
    def points(self) -> ScenePoints:
        """Every point held, in voxel key order (the store's own tensors: do not modify them)."""
        main = self._joined()
        return ScenePoints(main.xyz, main.rgb, main.trust, main.born, main.lighting)

    def take(self, select: torch.Tensor) -> ScenePoints:
        """Remove the points where `select` (N,) bool (in the order of points()) is true and return them (an
        object picked up)."""
        if select.shape != (len(self),) or select.dtype != torch.bool:
            raise ValueError(f'select must be a ({len(self)},) bool tensor, got {tuple(select.shape)} {select.dtype}')
        select = select.to(self.device)
        taken = self.points().at(select)
        self._keep(~select)
        return taken

    def put(self, points: ScenePoints) -> int:
        """Add points with their own colour, trust and age (an object put down); voxels already held keep their
        point. Returns the points added."""
        n = len(points)
        lighting = torch.zeros(n, 4, dtype=torch.int8) if points.lighting is None else points.lighting
        if points.xyz.shape != (n, 3) or points.rgb.shape != (n, 3) or points.trust.shape != (n,) \
                or points.born.shape != (n,) or lighting.shape != (n, 4):
            raise ValueError('scene points disagree in shape: xyz (N, 3), rgb (N, 3), trust (N,), born (N,), '
                             'lighting (N, 4)')
        if not bool(torch.isfinite(points.xyz).all()):
            raise ValueError('scene points must be finite')
        if not n:
            return 0
        dev = self.device
        return self._insert(points.xyz.float().to(dev), points.rgb.to(torch.uint8).to(dev),
                            points.trust.to(torch.uint8).to(dev), points.born.to(torch.int32).to(dev),
                            lighting.to(torch.int8).to(dev))

    # ---- render ----------------------------------------------------------------------------------------
    def render(self, target_c2w: np.ndarray | torch.Tensor, K: np.ndarray, height: int, width: int,
               fill_cracks: bool = True, cull: bool = True) -> SceneRender:
        """The store seen from the target camera: z-buffered nearest splat of the observed points, then of the
        imagined ones where no observed point lands (nor, with scene.crack_px, in a crack between observed
        ones). `cull`: project only the main store's cells that can be in view (the same render, cheaper)."""
        check_intrinsics(np.asarray(K))
        dev = self.device
        c2w = torch.as_tensor(np.asarray(target_c2w, dtype=np.float64)).float().to(dev)
        check_rigid(c2w, 'target_c2w')
        zeros = torch.zeros(height, width, device=dev)
        empty = SceneRender(torch.zeros(3, height, width, device=dev), zeros, zeros.bool(), zeros,
                            torch.full((height, width), -1, dtype=torch.long, device=dev))
        if not len(self):
            return empty
        w2c = _rigid_inverse(c2w)
        Kt = torch.as_tensor(np.asarray(K, dtype=np.float64)).float().to(dev)
        main, side = self._main, self._side
        near = self._index.visible(w2c, Kt, height, width, self.config.voxel_m) if cull \
            else torch.arange(len(main), device=dev)
        # The candidates: the main store's points near the view, then the side store's (few) points.
        xyz = torch.cat([main.xyz[near], side.xyz])
        cam = w2c[:3, :3] @ xyz.T + w2c[:3, 3:]  # (3, P) target camera coordinates
        # Only the points in the view go to the z-buffer (the same test it makes), so its cost follows what the
        # camera sees, not the size of the store.
        z = cam[2]
        uvw = Kt @ cam
        u, v = uvw[0] / z.clamp_min(1e-12), uvw[1] / z.clamp_min(1e-12)
        sel = ((z > 1e-6) & (u >= 0) & (u < width) & (v >= 0) & (v < height)).nonzero()[:, 0]  # (M,)
        if not len(sel):
            return empty  # nothing held is in view
        cam = cam[:, sel]
        # the points in view: sel is ascending, so the main store's come first
        k = int(torch.searchsorted(sel, len(near)))
        at_main, at_side = near[sel[:k]], sel[k:] - len(near)
        keys, trust, rgb, born, lighting = (torch.cat([a[at_main], b[at_side]]) for a, b in (
            (main.keys, side.keys), (main.trust, side.trust), (main.rgb, side.rgb), (main.born, side.born),
            (main.lighting, side.lighting)))
        # Observations win: imagined points (whose depth is the model's guess) only fill what no observed point
        # covers, so a guess never occludes what was seen.
        observed = trust == round(OBSERVED * 255)  # (M,)
        owner, depth = zbuffer_by_key(cam, Kt, height, width, observed, keys)
        if not bool(observed.all()):
            owner_i, depth_i = zbuffer_by_key(cam, Kt, height, width, ~observed, keys)
            if self.config.crack_px > 0:  # not through a crack in a near observed surface (SceneConfig.crack_px)
                behind = within_cracks(owner >= 0, self.config.crack_px)
                owner_i, depth_i = torch.where(behind, -1, owner_i), torch.where(behind, 0.0, depth_i)
            depth = torch.where(owner >= 0, depth, depth_i)
            owner = torch.where(owner >= 0, owner, owner_i)
        mask = owner >= 0
        idx = owner.clamp_min(0)
        rgb = torch.where(mask, rgb[idx].permute(2, 0, 1).float() / 255, 0.0)  # (3, H, W)
        if self.config.headlight > 0:  # lit again as this camera faces each point (headlight.py)
            seen, faces = facings(lighting[idx], c2w[:3, 2])  # (H, W) each
            rgb = torch.where(mask, relit(rgb, seen, faces, self.config.headlight), 0.0)
        trust = torch.where(mask, trust[idx].float() / 255, 0.0)
        born = torch.where(mask, born[idx].long(), -1)
        if fill_cracks:  # colour, trust and age filled together, twice (a crack row meeting a crack column)
            image = torch.cat([rgb, trust[None], born[None].float()])[None]  # (1, 5, H, W)
            d, m = depth[None], mask[None]
            for _ in range(2):
                image, d, m = fill_one_pixel_cracks(image, d, m)
            rgb, trust, born = image[0, :3], image[0, 3], image[0, 4].round().long()
            depth, mask = d[0], m[0]
        return SceneRender(rgb, depth, mask, trust, born)

    # ---- sessions --------------------------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        main = self._joined()
        state = {'scene.xyz': main.xyz.cpu(), 'scene.rgb': main.rgb.cpu(), 'scene.trust': main.trust.cpu(),
                 'scene.born': main.born.cpu(), 'scene.lighting': main.lighting.cpu()}
        if self.repeat_planes and self.repeat_source is not None:
            state.update({f'scene.repeat_{k}': torch.from_numpy(np.ascontiguousarray(v))
                          for k, v in planes_state(self.repeat_planes, self.repeat_source).items()})
        return state

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        try:
            xyz, rgb, trust, born = (state[f'scene.{k}'] for k in ('xyz', 'rgb', 'trust', 'born'))
        except KeyError as exc:
            raise ValueError(f'scene memory state lacks {exc}') from None
        n = xyz.shape[0]
        lighting = state.get('scene.lighting', torch.zeros(n, 4, dtype=torch.int8))  # saved before it: unknown
        if xyz.shape != (n, 3) or rgb.shape != (n, 3) or trust.shape != (n,) or born.shape != (n,) \
                or lighting.shape != (n, 4):
            raise ValueError('scene memory state tensors disagree in shape')
        if not torch.isfinite(xyz).all():
            raise ValueError('scene memory state holds non-finite points')
        self.reset()
        dev = self.device
        xyz = xyz.float().to(dev)
        keys, order = torch.sort(self._voxel_keys(xyz))
        self._main = SortedPoints(xyz[order], rgb.to(torch.uint8).to(dev)[order], trust.to(torch.uint8).to(dev)[order],
                             born.to(torch.int32).to(dev)[order], lighting.to(torch.int8).to(dev)[order], keys)
        self._index = CellIndex.built(keys)
        self._count_observed(self._main.rgb, self._main.trust, 1)
        if 'scene.repeat_source_rgb' in state:  # a session saved without repeats (or their source) has none
            self.repeat_planes, self.repeat_source = planes_from_state(
                {k[len('scene.repeat_'):]: v.double().numpy() for k, v in state.items()
                 if k.startswith('scene.repeat_')})


def render_sources(rgb: torch.Tensor, depth: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor,
                   targets: torch.Tensor, config: SceneConfig | None = None,
                   observed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """What the engine's scene memory would render: the source frames committed in order (the first `observed`
    as observed, the rest as imagined), rendered into each target camera.

    rgb (B, S, 3, H, W) in [0, 1], depth (B, S, H, W), c2w (B, S, 4, 4), K (B, 3, 3), targets (B, T, 4, 4)
    -> rgb (B, T, 3, H, W) (0 where uncovered), mask (B, T, H, W) bool. Training builds its geometric guess with
    it, so it sees exactly what inference gives.
    """
    B, S, _, H, W = rgb.shape
    out_rgb = rgb.new_zeros(B, targets.shape[1], 3, H, W)
    out_mask = torch.zeros(B, targets.shape[1], H, W, dtype=torch.bool, device=rgb.device)
    for b in range(B):
        scene = SceneMemory(config, rgb.device)
        Kb = K[b].detach().double().cpu().numpy()
        for s in range(S):
            scene.commit(rgb[b, s].detach(), depth[b, s].detach(), c2w[b, s].detach().double().cpu().numpy(), Kb,
                         trust=OBSERVED if s < observed else IMAGINED, frame_index=s)
        for t in range(targets.shape[1]):
            r = scene.render(targets[b, t].detach().double().cpu().numpy(), Kb, H, W)
            out_rgb[b, t], out_mask[b, t] = r.rgb, r.mask
    return out_rgb, out_mask
