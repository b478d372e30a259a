"""The topics an import reads from a bag: the colour images, their camera_info, registered depth, TF and
odometry, as the options name them or found beside the colour images; what is missing or ambiguous is refused,
naming the option that settles it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from worldscape_ros.data.bag_images import COMPRESSED, IMAGE
from worldscape_ros.errors import BagImportError

CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
ODOMETRY = 'nav_msgs/msg/Odometry'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'


class TopicOptions(Protocol):
    """The import options that choose topics (rosbag_import.ImportOptions)."""

    @property
    def image_topic(self) -> str | None: ...
    @property
    def camera_info_topic(self) -> str | None: ...
    @property
    def depth_topic(self) -> str | None: ...
    @property
    def odom_topic(self) -> str | None: ...
    @property
    def pose_source(self) -> str: ...
    @property
    def vfov_deg(self) -> float | None: ...
    @property
    def hfov_deg(self) -> float | None: ...


@dataclass(frozen=True)
class Topics:
    """The topics an import reads."""

    image: str
    info: str | None  # None: intrinsics from the options' field of view
    depth: str | None
    tf: list[str]  # /tf and /tf_static, whatever their names
    odom: str | None


def pick_topic(conns: dict[str, str], types: tuple[str, ...], what: str, given: str | None,
               near: str | None = None, exclude: str = '') -> str | None:
    """The topic given (checked), else the one beside `near` named like `what`, else the only candidate."""
    candidates = sorted(t for t, ty in conns.items() if ty in types and not (exclude and exclude in t))
    if given is not None:
        if given not in conns:
            raise BagImportError(f'topic {given} is not in the bag (its topics: {", ".join(sorted(conns))})')
        if conns[given] not in types:
            raise BagImportError(f'topic {given} has type {conns[given]}, not {" or ".join(types)}')
        return given
    if near is not None:
        beside = near.rsplit('/', 1)[0] + '/' + what
        if beside in candidates:
            return beside
    return candidates[0] if len(candidates) == 1 else None


def choose_topics(conns: dict[str, str], options: TopicOptions, bag: Path, notes: list[str]) -> Topics:
    """The topics to read, as given in the options or found beside the colour images; refuses what is missing
    or ambiguous, naming the option that settles it."""
    image_topic = pick_topic(conns, (IMAGE, COMPRESSED), 'image_raw', options.image_topic, exclude='depth')
    if image_topic is None:
        topics = sorted(t for t, ty in conns.items() if ty in (IMAGE, COMPRESSED) and 'depth' not in t)
        raise BagImportError(f'{bag}: ' + ('no colour image topic (sensor_msgs/Image or CompressedImage)'
                                           if not topics else f'several image topics ({", ".join(topics)}): '
                                           'choose one with --image-topic'))
    info_topic = pick_topic(conns, (CAMERA_INFO,), 'camera_info', options.camera_info_topic, near=image_topic,
                            exclude='depth')
    if info_topic is None and options.vfov_deg is None and options.hfov_deg is None:
        raise BagImportError(f'{bag}: images on {image_topic} have no camera_info (none beside them, or '
                             'several): name one with --camera-info-topic, or give the camera\'s --vfov/--hfov')
    depth_topic = None
    if options.depth_topic != '':
        depth_topic = options.depth_topic
        if depth_topic is None:
            for name in ('depth/image_raw', 'depth/image_rect_raw', 'depth/image_rect', 'depth/image'):
                candidate = image_topic.rsplit('/', 1)[0] + '/' + name
                if conns.get(candidate) in (IMAGE, COMPRESSED):
                    depth_topic = candidate
                    break
            else:  # e.g. /camera/aligned_depth_to_color/image_raw beside /camera/color/image_raw
                depths = sorted(t for t, ty in conns.items() if ty == IMAGE and 'depth' in t)
                if len(depths) == 1:
                    depth_topic = depths[0]
                elif depths:
                    notes.append(f'several depth topics ({", ".join(depths)}): imported without depth; '
                                 'choose one with --depth-topic')
        else:
            pick_topic(conns, (IMAGE, COMPRESSED), 'depth', depth_topic)
    tf_topics = [t for t, ty in conns.items() if ty == TF_MESSAGE]
    odom_topic = pick_topic(conns, (ODOMETRY,), 'odom', options.odom_topic) if options.pose_source != 'tf' else None
    if options.pose_source == 'odom' and odom_topic is None:
        raise BagImportError(f'{bag}: no odometry topic (nav_msgs/Odometry) for --pose odom'
                             + ('' if options.odom_topic else ' (or several: choose one with --odom-topic)'))
    return Topics(image_topic, info_topic, depth_topic, tf_topics, odom_topic)
