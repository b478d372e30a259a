"""Offscreen RGB + metric depth rendering of a SceneSpec from OpenCV camera-to-world poses.

One renderer owns one GL context, MjrContext, MjvScene and output buffers, reused for every frame (no
per-frame allocation beyond the returned copies). MuJoCo cameras look down -z with y up (OpenGL); our poses
are OpenCV (z forward, y down), so the MuJoCo camera rotation is R_cv @ diag(1, -1, -1). MuJoCo's projection
puts the principal point at the image centre with `fovy` the full vertical field of view, which is exactly
`camera.intrinsics_from_fov` with pixel centres at u + 0.5.
"""

from __future__ import annotations

import atexit
import os

os.environ.setdefault('MUJOCO_GL', 'osmesa')  # before mujoco is imported: CPU offscreen rendering

import mujoco
import numpy as np

from worldscape_ros.model.camera import check_rigid, intrinsics_from_fov
from worldscape_ros.synthetic.builder import SceneSpec

_CV_TO_GL = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> OpenGL camera axes (x same, y and z flipped)
# Mesa's software rasteriser (osmesa) samples depth off the pixel centre, at (u + 0.375, v + 0.875) in image
# coordinates (measured against analytic planes; RGB is drawn at the centres). Inverse depth is affine in the
# image on a plane, so it is moved back to the centre by these fractions of a pixel along each axis.
_DEPTH_SAMPLE_OFFSET = {'osmesa': (-0.125, 0.375)}  # (du, dv) of the sample from the pixel centre


_SHARED_GL: dict[int, mujoco.GLContext] = {}  # one GL context per process (keyed by pid: forks get their own)


def _shared_gl_context() -> mujoco.GLContext:
    """The process's GL context, made once: every SceneRenderer (one MjrContext per scene) renders into its own
    offscreen framebuffer inside it, so a datagen worker pays for one context, not one per episode."""
    pid = os.getpid()
    if pid not in _SHARED_GL:
        _SHARED_GL[pid] = mujoco.GLContext(64, 64)  # renders go to MuJoCo's own framebuffer objects
        atexit.register(_free_shared_gl, pid)  # osmesa wants its context freed before the interpreter exits
    return _SHARED_GL[pid]


def _free_shared_gl(pid: int) -> None:
    ctx = _SHARED_GL.pop(pid, None)
    if ctx is not None and pid == os.getpid():
        ctx.free()


def _centre_inverse_depth(inv: np.ndarray, du: float, dv: float) -> np.ndarray:
    """Move inverse depth samples taken at (u + 0.5 + du, v + 0.5 + dv) to the pixel centres.

    The slope on each axis is the neighbour difference of smaller magnitude, so a pixel on an object's edge
    extrapolates along its own surface, never across the depth jump.
    """
    out = inv.copy()
    for axis, shift in ((1, du), (0, dv)):
        if shift == 0.0:
            continue
        d = np.diff(inv, axis=axis)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 0)
        back = np.pad(d, pad, mode='edge')  # inv[i] - inv[i - 1]
        pad[axis] = (0, 1)
        fwd = np.pad(d, pad, mode='edge')  # inv[i + 1] - inv[i]
        slope = np.where(np.abs(back) <= np.abs(fwd), back, fwd)
        out -= shift * slope
    return out


class SceneRenderer:
    """Renders `scene` at width x height with a pinhole camera of vertical field of view `vfov_deg`."""

    def __init__(self, scene: SceneSpec, width: int, height: int, vfov_deg: float = 60.0) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f'render size must be positive, got {width}x{height}')
        self.scene = scene
        self.width, self.height = int(width), int(height)
        self.vfov_deg = float(vfov_deg)
        self._K = intrinsics_from_fov(self.width, self.height, self.vfov_deg)  # validates the fov too
        self.model = scene.build_model()
        # An offscreen buffer of exactly the image size: a larger one costs time in every MjrContext.
        self.model.vis.global_.offwidth = self.width
        self.model.vis.global_.offheight = self.height
        self.data = mujoco.MjData(self.model)
        mujoco.mj_forward(self.model, self.data)

        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._scene = mujoco.MjvScene(self.model, maxgeom=2000)
        self._gl: mujoco.GLContext | None = _shared_gl_context()
        self._gl.make_current()
        self._context: mujoco.MjrContext | None = mujoco.MjrContext(self.model,
                                                                    mujoco.mjtFontScale.mjFONTSCALE_50)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)  # bottom-up GL rows
        self._zbuf = np.empty((self.height, self.width), dtype=np.float32)
        extent = float(self.model.stat.extent)
        near, far = self.model.vis.map.znear * extent, self.model.vis.map.zfar * extent
        # ZEROFAR depth map: buffer value b in [0, 1] (1 at near) -> z = far * near / ((far - near) * b + near)
        self._near, self._far = near, far
        self.max_depth = min(float(scene.max_depth), far)
        self._depth_offset = _DEPTH_SAMPLE_OFFSET.get(os.environ.get('MUJOCO_GL', ''))

    @property
    def intrinsics(self) -> np.ndarray:
        """K (3, 3) in pixels, equal to camera.intrinsics_from_fov(width, height, vfov_deg)."""
        return self._K.copy()

    def forward(self) -> None:
        """Recompute body poses after changing mocap poses in `self.data` (kinematics only: no physics)."""
        mujoco.mj_kinematics(self.model, self.data)

    def _update(self, c2w: np.ndarray) -> None:
        if self._context is None:
            raise RuntimeError('SceneRenderer.render called after close()')
        check_rigid(c2w, 'c2w')
        c2w = np.asarray(c2w, dtype=np.float64)
        R_gl = c2w[:3, :3] @ _CV_TO_GL  # columns: camera x, y (up), z (backwards) in world
        mujoco.mjv_updateScene(self.model, self.data, self._option, self._perturb, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        # Overwrite the free camera with our pose: both stereo eyes get the same frustum.
        half_h = self._near * np.tan(np.radians(self.vfov_deg) / 2)
        for cam in self._scene.camera:
            cam.pos[:] = c2w[:3, 3]
            cam.forward[:] = -R_gl[:, 2]
            cam.up[:] = R_gl[:, 1]
            cam.frustum_center = 0.0
            cam.frustum_width = 0.0  # 0: MuJoCo derives it from the viewport's aspect ratio
            cam.frustum_bottom = -half_h
            cam.frustum_top = half_h
            cam.frustum_near = self._near
            cam.frustum_far = self._far
            cam.orthographic = 0
        if self._scene.nlight and self._scene.lights[0].headlight:  # the headlight rides on our camera
            self._scene.lights[0].pos[:] = c2w[:3, 3]
            self._scene.lights[0].dir[:] = -R_gl[:, 2]

    def render(self, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RGB (H, W, 3) uint8 and metric z-depth (H, W) float32 seen from an OpenCV camera-to-world pose."""
        self._update(c2w)
        self._make_current()
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._rgb, self._zbuf, self._rect, self._context)
        rgb = np.ascontiguousarray(self._rgb[::-1])  # GL rows are bottom-up
        inv = ((self._far - self._near) * self._zbuf[::-1] + self._near) / (self._near * self._far)  # 1 / z
        if self._depth_offset is not None:
            inv = _centre_inverse_depth(inv, *self._depth_offset)
        depth = 1.0 / np.maximum(inv, 1.0 / self._far)
        # Far-plane leaks (the void through wall seams, or sky) read as the scene's maximum depth.
        np.minimum(depth, self.max_depth, out=depth)
        return rgb, depth.astype(np.float32, copy=False)

    def segmentation(self, c2w: np.ndarray) -> np.ndarray:
        """Geom id per pixel (H, W) int32, -1 where no geom is drawn."""
        self._update(c2w)
        flags = self._scene.flags.copy()
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
        self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
        try:
            self._make_current()
            mujoco.mjr_render(self._rect, self._scene, self._context)
            mujoco.mjr_readPixels(self._rgb, None, self._rect, self._context)
        finally:
            np.copyto(self._scene.flags, flags)
        ids = self._rgb[::-1].astype(np.int32)
        seg = ids[..., 0] + ids[..., 1] * 256 + ids[..., 2] * 65536  # segid + 1, 0 for background
        lut = np.full(self._scene.ngeom + 1, -1, dtype=np.int32)
        for g in self._scene.geoms[: self._scene.ngeom]:
            if g.segid >= 0 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                lut[g.segid + 1] = g.objid
        return lut[np.clip(seg, 0, self._scene.ngeom)]

    def _make_current(self) -> None:
        """Select the shared context and this renderer's framebuffer (another renderer may have used both)."""
        self._gl.make_current()  # type: ignore[union-attr]
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)

    def close(self) -> None:
        """Free this renderer's MjrContext (the process's shared GL context stays for the next one)."""
        if self._context is not None:
            if self._gl is not None and os.getpid() in _SHARED_GL:
                self._gl.make_current()
                self._context.free()
            self._context = None
        self._gl = None

    def __enter__(self) -> SceneRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
