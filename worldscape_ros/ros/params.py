"""The simulator node's parameters: declared with descriptions, read into a typed config, validated at configure.

Every parameter has a default here, so a node runs with no YAML; config/simulator.yaml and
config/manipulation.yaml list them all with the same defaults. Invalid values raise ConfigError naming each
offending parameter and what it must be.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from worldscape_ros.errors import ConfigError
from worldscape_ros.tools.msg_fields import BASE_FRAME, CAMERA_LINK_FRAME, ODOM_FRAME, OPTICAL_FRAME

DEVICES = ('auto', 'cpu', 'cuda')
DTYPES = ('float32', 'bfloat16', 'float16')
MODES = ('navigation', 'manipulation')
MAX_PITCH = math.radians(60)  # kinematics.integrate clamps the camera pitch to this


@dataclass(frozen=True)
class SimulatorParams:
    # model
    model_config: str = ''
    checkpoint: str = 'default'
    device: str = 'auto'
    dtype: str = 'float32'
    fps: float = 0.0
    denoising_steps: int = 0
    threads: int = 0
    memory: bool = True
    memory_budget_mb: float = 0.0
    # start
    start_seed: int = 0
    start_scene: str = 'room'
    start_image: str = ''
    start_depth: str = ''
    mode: str = 'navigation'
    camera_height: float = 0.0
    camera_pitch: float = 0.0
    # motion
    max_linear_velocity: float = 2.0
    max_angular_velocity: float = 2.0
    cmd_vel_timeout: float = 0.5
    hand_keypoints_timeout: float = 0.5
    realtime: bool = True
    drop_stale_frames: bool = True
    start_paused: bool = False
    autostart: bool = True
    max_position: float = 1000.0
    max_step_frames: int = 1000
    step_timeout: float = 300.0
    # frames
    odom_frame: str = ODOM_FRAME
    base_frame: str = BASE_FRAME
    camera_link_frame: str = CAMERA_LINK_FRAME
    camera_frame: str = OPTICAL_FRAME
    publish_tf: bool = True
    publish_clock: bool = True
    # topics (relative names follow the node's namespace; remapping works as well)
    cmd_vel_topic: str = 'cmd_vel'
    camera_pose_topic: str = 'camera_pose'
    hand_keypoints_topic: str = 'hand_keypoints'
    image_topic: str = 'camera/image_raw'
    camera_info_topic: str = 'camera/camera_info'
    depth_topic: str = 'camera/depth/image_raw'
    depth_info_topic: str = 'camera/depth/camera_info'
    odom_topic: str = 'odom'
    pose_video_topic: str = 'debug/pose_video'
    qos_depth: int = 5
    diagnostics_period: float = 1.0

    @property
    def checkpoint_arg(self) -> str | None:
        """What the engine's from_pretrained takes: None for the shipped default."""
        return None if self.checkpoint in ('', 'default') else self.checkpoint


DESCRIPTIONS: dict[str, str] = {
    'model_config': "model config name (models/*.yaml), e.g. 'ws-tiny'; '' = the checkpoint's own",
    'checkpoint': "'' or 'default' = the shipped checkpoint in models/, 'random' = random init of model_config, "
                  'or a path to a .safetensors checkpoint',
    'device': 'auto (cuda when available, else cpu), cpu, or cuda (configure fails when CUDA is absent)',
    'dtype': 'inference dtype: float32, bfloat16 or float16',
    'fps': 'frames per second of sim time (each frame advances sim time by 1/fps); 0 = the model\'s rate',
    'denoising_steps': "denoising steps per chunk; 0 = the model's default",
    'threads': "torch CPU threads the inference thread steps with; 0 = torch's default (the cores, or "
               'OMP_NUM_THREADS)',
    'memory': 'keep the global memory pool of the KV cache; false = sink and local window only',
    'memory_budget_mb': 'byte budget of the global memory pool in MiB (its cached keys, values and frames); the '
                        "sink and the local window are bounded by their chunk counts and not counted; 0 = the pool's "
                        'chunk budget alone',
    'start_seed': 'seed of the synthetic scene whose view starts the session (when start_image is empty)',
    'start_scene': "kind of synthetic start scene, e.g. 'room'",
    'start_image': 'RGB image file (PNG/JPEG, or .npy uint8 HxWx3) of the model\'s size to start from; '
                   "'' = a synthetic scene view",
    'start_depth': 'optional depth for start_image: .npy float32 HxW metres',
    'mode': 'navigation (cmd_vel / camera_pose) or manipulation (also hand keypoints, pose video published)',
    'camera_height': "camera height above the base in metres for an image start; 0 = the model's",
    'camera_pitch': 'initial camera pitch in radians for an image start (positive looks down), |pitch| <= 60 deg',
    'max_linear_velocity': 'commands above this speed (m/s, each axis) are clamped, with a throttled warning',
    'max_angular_velocity': 'commands above this rate (rad/s, each axis) are clamped, with a throttled warning',
    'cmd_vel_timeout': 'seconds of sim time without cmd_vel after which the base stops (as Gazebo diff drive)',
    'hand_keypoints_timeout': 'seconds of sim time after which hand keypoints are stale and dropped',
    'realtime': 'pace generation to no faster than fps (true) or generate as fast as possible (false)',
    'drop_stale_frames': 'give up the frame in flight when a different cmd_vel or pose command arrives before it '
                         'is committed, and make it again from the newer command (once per frame)',
    'start_paused': 'enter the active state paused (generate only on ~/step or after ~/resume)',
    'autostart': 'the console script configures and activates the node at start-up',
    'max_position': 'working range in metres: camera poses (camera_pose, reset_from_image) farther than this from '
                    'the odom origin on any axis are refused, and velocity commands stop at its edge',
    'max_step_frames': 'the most frames one ~/step request may ask for',
    'step_timeout': 'seconds a ~/step request waits for its frames at most; then it answers with the frames made '
                    'and the rest are cancelled',
    'odom_frame': 'odometry frame id (REP-105)',
    'base_frame': 'robot base frame id',
    'camera_link_frame': 'camera body frame id (x forward, z up)',
    'camera_frame': 'camera optical frame id (z forward, x right, y down): the frame of images and keypoints',
    'publish_tf': 'publish odom -> base_link on /tf and the camera mount on /tf_static',
    'publish_clock': 'publish sim time on /clock',
    'cmd_vel_topic': 'input: geometry_msgs/Twist velocity commands',
    'camera_pose_topic': 'input: geometry_msgs/PoseStamped camera_optical_frame poses in odom to follow',
    'hand_keypoints_topic': 'input: worldscape_msgs/HandKeypoints (manipulation mode)',
    'image_topic': 'output: rgb8 image',
    'camera_info_topic': 'output: CameraInfo of the rgb image',
    'depth_topic': 'output: 32FC1 depth in metres (REP-118)',
    'depth_info_topic': 'output: CameraInfo of the depth image',
    'odom_topic': 'output: nav_msgs/Odometry',
    'pose_video_topic': 'output: rgb8 debug image of the hand conditioning (manipulation mode)',
    'qos_depth': 'history depth of the image, camera info and odometry publishers',
    'diagnostics_period': 'seconds of wall time between /diagnostics messages',
}


def _one_of(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f'must be one of {", ".join(options)}'


def _positive(v: float) -> str | None:
    return None if math.isfinite(v) and v > 0 else 'must be positive and finite'


def _non_negative(v: float) -> str | None:
    return None if math.isfinite(v) and v >= 0 else 'must be zero or positive and finite'


def _non_empty(v: str) -> str | None:
    return None if v.strip() else 'must not be empty'


VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    'device': _one_of(DEVICES),
    'dtype': _one_of(DTYPES),
    'mode': _one_of(MODES),
    'fps': lambda v: None if math.isfinite(v) and 0 <= v <= 1000 else 'must be in [0, 1000] (0 = the model\'s)',
    'denoising_steps': lambda v: None if 0 <= v <= 1000 else 'must be in [0, 1000] (0 = the model\'s)',
    'threads': lambda v: None if 0 <= v <= 1024 else "must be in [0, 1024] (0 = torch's default)",
    'memory_budget_mb': _non_negative,
    'start_seed': lambda v: None if 0 <= v < 2**32 else 'must be in [0, 2**32)',
    'start_scene': _non_empty,
    'camera_height': lambda v: None if math.isfinite(v) and 0 <= v <= 100 else 'must be in [0, 100] metres',
    'camera_pitch': lambda v: None if math.isfinite(v) and abs(v) <= MAX_PITCH else 'must be within +-1.047 rad',
    'max_linear_velocity': _positive,
    'max_angular_velocity': _positive,
    'cmd_vel_timeout': _positive,
    'hand_keypoints_timeout': _positive,
    'qos_depth': lambda v: None if 1 <= v <= 1000 else 'must be in [1, 1000]',
    'max_position': lambda v: None if math.isfinite(v) and 1 <= v <= 1e6 else 'must be in [1, 1e6] metres',
    'max_step_frames': lambda v: None if 1 <= v <= 1_000_000 else 'must be in [1, 1000000]',
    'step_timeout': lambda v: None if math.isfinite(v) and 0 < v <= 86400 else 'must be in (0, 86400] seconds',
    'diagnostics_period': _positive,
    **{name: _non_empty for name in ('odom_frame', 'base_frame', 'camera_link_frame', 'camera_frame',
                                     'cmd_vel_topic', 'camera_pose_topic', 'hand_keypoints_topic', 'image_topic',
                                     'camera_info_topic', 'depth_topic', 'depth_info_topic', 'odom_topic',
                                     'pose_video_topic')},
}


def declare_parameters(node: Node, overrides: dict[str, Any] | None = None) -> None:
    """Declare every parameter with its description and default (`overrides` replace defaults)."""
    defaults = SimulatorParams()
    overrides = overrides or {}
    unknown = set(overrides) - {f.name for f in fields(SimulatorParams)}
    if unknown:
        raise ConfigError(f'unknown simulator parameters: {", ".join(sorted(unknown))}')
    for f in fields(SimulatorParams):
        value = overrides.get(f.name, getattr(defaults, f.name))
        # dynamic typing: a YAML value of the wrong type must reach read_parameters (a clear error at configure)
        # instead of raising while the node is constructed
        descriptor = ParameterDescriptor(name=f.name, description=DESCRIPTIONS[f.name], dynamic_typing=True)
        node.declare_parameter(f.name, value, descriptor)


def unknown_parameters(node: Node) -> list[str]:
    """Names the node was given (command line, params file) that it never declared, e.g. a typo like `width`.

    rclpy keeps such overrides without a word (allow_undeclared_parameters is off, so they are never declared);
    the simulator refuses them at configure instead."""
    overrides = getattr(node, '_parameter_overrides', {})  # rclpy's store of --ros-args parameters
    return sorted(name for name in overrides if not node.has_parameter(name))


def read_parameters(node: Node) -> SimulatorParams:
    """Read the declared parameters; raise ConfigError naming every invalid one (and any unknown one, with the
    list of those the node knows)."""
    defaults = SimulatorParams()
    values: dict[str, Any] = {}
    problems: list[str] = []
    unknown = unknown_parameters(node)
    if unknown:
        known = ', '.join(f.name for f in fields(SimulatorParams))
        problems.append(f'unknown parameter{"s" if len(unknown) > 1 else ""} {", ".join(unknown)} '
                        f'(the simulator knows: {known})')
    for f in fields(SimulatorParams):
        value = node.get_parameter(f.name).value
        expected = type(getattr(defaults, f.name))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # YAML `fps: 10` is an integer
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f'{f.name}={value!r} must be a {expected.__name__}')
            continue
        check = VALIDATORS.get(f.name)
        reason = check(value) if check else None
        if reason:
            problems.append(f'{f.name}={value!r} {reason}')
        values[f.name] = value
    if problems:
        raise ConfigError('invalid simulator parameters: ' + '; '.join(problems))
    return SimulatorParams(**values)
