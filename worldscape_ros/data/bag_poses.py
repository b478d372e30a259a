"""The camera's pose at an image stamp, from one of a bag's two pose sources: the TF tree (world_T_camera through
its chain of links) or odometry (world_T_base) composed with the camera's fixed mount on the base; with the span
of time over which the source has samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldscape_ros.data.bag_transforms import EXTRAPOLATION_NS, TransformBuffer, mount_transform
from worldscape_ros.errors import BagImportError


@dataclass(frozen=True)
class CameraPoses:
    """world_T_camera at a stamp (ns), known within the span shared by the source's moving links."""

    source: str  # tf or odom
    world: str
    pose_at: Callable[[int], np.ndarray]
    spans: list[tuple[int, int]]  # first and last stamp of each moving link; none: the camera never moves

    def covers(self, ns: int | np.integer) -> bool:
        lo = max((s[0] for s in self.spans), default=None)
        hi = min((s[1] for s in self.spans), default=None)
        return lo is None or hi is None or bool(lo - EXTRAPOLATION_NS <= ns <= hi + EXTRAPOLATION_NS)


def pose_source(asked: str, tf: TransformBuffer, camera: str, odom_topic: str | None, bag: Path) -> str:
    """tf or odom as asked; auto: TF when a moving chain reaches the camera, else odometry."""
    if asked != 'auto':
        return asked
    source = 'tf' if tf.moving_links(camera) and tf.chain(camera)[-1] != camera else 'odom'
    if source == 'odom' and odom_topic is None:
        known = ', '.join(sorted(set(tf.parent) | set(tf.parent.values()))) or 'none'
        raise BagImportError(f'{bag}: no pose for the camera: TF has no moving chain to {camera!r} '
                             f'(TF frames: {known}) and there is no odometry topic')
    return source


def tf_poses(tf: TransformBuffer, camera: str, world_frame: str | None) -> CameraPoses:
    """The camera's TF chain, from the world frame asked for or the root of its tree."""
    world = world_frame or tf.chain(camera)[-1]

    def pose_at(ns: int) -> np.ndarray:
        return tf.lookup(world, camera, ns)

    spans = [s for s in (tf.span(c) for c in tf.moving_links(camera)) if s is not None]
    return CameraPoses('tf', world, pose_at, spans)


def odometry_poses(odom: TransformBuffer, tf: TransformBuffer, camera: str, mount: tuple[float, ...] | None,
                   world_frame: str | None, odom_topic: str | None, bag: Path) -> CameraPoses:
    """Odometry's world_T_base times the mount given, or else the fixed base_T_camera on /tf_static."""
    base = next(iter(odom.parent), None)
    if base is None:
        raise BagImportError(f'{bag}: odometry topic {odom_topic} has no messages')
    world = odom.parent[base]
    fixed = mount_transform(mount) if mount is not None else _static_mount(tf, base, camera, bag)
    if world_frame and world_frame.lstrip('/') != world:
        raise BagImportError(f'{bag}: odometry is in {world!r}, not the --world-frame asked for')

    def pose_at(ns: int) -> np.ndarray:
        return odom.link(base, ns) @ fixed

    spans = [s for s in (odom.span(base),) if s is not None]
    return CameraPoses('odom', world, pose_at, spans)


def _static_mount(tf: TransformBuffer, base: str, camera: str, bag: Path) -> np.ndarray:
    try:
        mount = tf.lookup(base, camera, 0) if not tf.moving_links(camera) else None
    except BagImportError:
        mount = None
    if mount is None:
        raise BagImportError(f'{bag}: no fixed mount from the odometry frame {base!r} to the camera '
                             f'{camera!r} on /tf_static: give it with --mount "x y z roll pitch yaw"')
    return mount
