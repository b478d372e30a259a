"""Hand tracker: a camera image topic -> worldscape_msgs/HandKeypoints with MediaPipe Hands.

MediaPipe is an optional extra (only `mediapipe==0.10.21` ships the hand model in its wheel, and it
needs numpy<2): it is imported when the node starts, with a clear error if it is missing. The conversion from
MediaPipe's results to keypoints is plain numpy (`detections_from_mediapipe`), tested without MediaPipe.

Geometry: MediaPipe gives, per hand, 21 image landmarks (x, y normalised to the image) and 21 metric "world"
landmarks (metres, origin at the hand's centre, axes along the image's: x right, y down, z away). The hand's
position in the camera is the translation t that makes the world landmarks, moved by t and projected with the
camera intrinsics K, land on the image landmarks: linear least squares in t (a PnP with known rotation). The
result is the 21 points in the camera optical frame in metres, as HandKeypoints wants.

Handedness: MediaPipe labels hands as if the image were mirrored (a selfie view). For an ordinary camera
(`mirrored_input: false`) its 'Left' is the person's right hand, and the label is swapped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from worldscape_ros.model.pixel_convention import k_from_ros
from worldscape_ros.ros.node_main import companion_node, declare_params, described, refuse, spin_until_interrupted
from worldscape_ros.tools.msg_fields import NUM_HAND_KEYPOINTS as NUM_LANDMARKS  # MediaPipe's, HandKeypoints'

if TYPE_CHECKING:
    from rclpy.node import Node
    from sensor_msgs.msg import CameraInfo, Image


@dataclass
class HandDetection:
    handedness: str  # 'left' or 'right' (the person's hand)
    points: np.ndarray  # (21, 3) camera optical frame, metres
    scores: np.ndarray  # (21,) in [0, 1]; 0 for a landmark outside the image


def _xyz(landmarks: Any) -> np.ndarray:
    lm = list(landmarks.landmark)
    if len(lm) != NUM_LANDMARKS:
        raise ValueError(f'a MediaPipe hand has {NUM_LANDMARKS} landmarks, got {len(lm)}')
    return np.array([[p.x, p.y, p.z] for p in lm], dtype=np.float64)  # (21, 3)


def place_hand(world: np.ndarray, uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Translation t (3,) with K (world + t) projecting onto pixel coordinates uv (21, 2), by least squares.

    For each landmark: fx (X + tx) = (u - cx)(Z + tz) and fy (Y + ty) = (v - cy)(Z + tz), linear in t.
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    n = len(world)
    A = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    A[:n, 0], A[:n, 2], b[:n] = fx, -du, du * world[:, 2] - fx * world[:, 0]
    A[n:, 1], A[n:, 2], b[n:] = fy, -dv, dv * world[:, 2] - fy * world[:, 1]
    t, *_ = np.linalg.lstsq(A, b, rcond=None)
    return t


def detections_from_mediapipe(results: Any, K: np.ndarray, width: int, height: int, mirrored_input: bool = False,
                              assumed_depth: float = 0.5) -> list[HandDetection]:
    """MediaPipe Hands results (the legacy `solutions.hands` structure: multi_hand_landmarks,
    multi_hand_world_landmarks, multi_handedness) -> hands in the camera optical frame.

    Without world landmarks, the image landmarks are back-projected at `assumed_depth` metres plus MediaPipe's
    relative z (which is on the scale of x, i.e. of the image width).
    """
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f'K must be a 3x3 intrinsics matrix with positive focal lengths, got {K.tolist()}')
    if width <= 0 or height <= 0:
        raise ValueError(f'image size must be positive, got {width}x{height}')
    image_hands = list(getattr(results, 'multi_hand_landmarks', None) or [])
    world_hands = list(getattr(results, 'multi_hand_world_landmarks', None) or [])
    labels = list(getattr(results, 'multi_handedness', None) or [])
    if world_hands and len(world_hands) != len(image_hands):
        raise ValueError(f'{len(image_hands)} image hands but {len(world_hands)} world hands in the results')
    out = []
    for i, hand in enumerate(image_hands):
        norm = _xyz(hand)  # (21, 3): x, y in [0, 1] of the image, z relative depth
        uv = norm[:, :2] * np.array([width, height])  # pixel coordinates (continuous, pixel centres at +0.5)
        if world_hands:
            world = _xyz(world_hands[i])
            points = world + place_hand(world, uv, K)
        else:
            z = assumed_depth + norm[:, 2] * width / K[0, 0] * assumed_depth
            rays = np.concatenate([uv, np.ones((NUM_LANDMARKS, 1))], axis=1) @ np.linalg.inv(K).T  # (21, 3), z = 1
            points = rays * z[:, None]
        label, score = 'right', 1.0
        if i < len(labels) and labels[i].classification:
            c = labels[i].classification[0]
            label, score = str(c.label).lower(), float(c.score)
            if label not in ('left', 'right'):
                raise ValueError(f"MediaPipe handedness must be 'Left' or 'Right', got {c.label!r}")
            if not mirrored_input:
                label = 'left' if label == 'right' else 'right'
        inside = (norm[:, 0] >= 0) & (norm[:, 0] <= 1) & (norm[:, 1] >= 0) & (norm[:, 1] <= 1)
        scores = np.where(inside, score, 0.0).astype(np.float32)
        out.append(HandDetection(label, points, scores))
    return out


def to_message(detection: HandDetection, header: Any) -> Any:
    """HandDetection -> worldscape_msgs/HandKeypoints with the given header (stamp and optical frame_id)."""
    from worldscape_msgs.msg import HandKeypoints

    msg = HandKeypoints()
    msg.header = header
    msg.handedness = detection.handedness
    for point, xyz in zip(msg.points, detection.points):
        point.x, point.y, point.z = (float(v) for v in xyz)
    msg.scores = [float(s) for s in detection.scores]
    return msg


MEDIAPIPE_HINT = ("the hand tracker needs MediaPipe, an optional extra: pip install 'mediapipe==0.10.21' "
                  '(the last release whose wheel ships the hand model; it needs numpy<2, so use a separate venv '
                  'or a real ROS install). Without a tracker, scripted_hands plays keypoint trajectories.')


def import_mediapipe() -> Any:
    try:
        import mediapipe
    except ImportError as exc:
        raise RuntimeError(f'{MEDIAPIPE_HINT} ({exc})') from None
    if not hasattr(mediapipe, 'solutions') or not hasattr(mediapipe.solutions, 'hands'):
        raise RuntimeError(f'this mediapipe ({getattr(mediapipe, "__version__", "?")}) has no solutions.hands: '
                           f'{MEDIAPIPE_HINT}')
    return mediapipe


@dataclass(frozen=True)
class TrackerParams:
    """The node's parameters (`ros2 param describe` shows these descriptions)."""

    image_topic: str = described('image_raw', 'input camera image (rgb8 or bgr8)')
    camera_info_topic: str = described('camera_info', 'CameraInfo of that camera (for K)')
    max_hands: int = described(1, 'hands to track')
    mirrored_input: bool = described(False, 'the image is a mirrored (selfie) view')
    min_detection_confidence: float = described(0.5, 'MediaPipe detection threshold')


def rgb_pixels(msg: Image) -> np.ndarray:
    """An rgb8 or bgr8 sensor_msgs/Image -> (height, width, 3) RGB, rows padded to `step` cut off."""
    img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, :msg.width * 3]
    rgb = img.reshape(msg.height, msg.width, 3)
    return rgb[..., ::-1] if msg.encoding == 'bgr8' else rgb


class HandTracker:
    """Subscribes to the camera's images and CameraInfo; publishes each hand MediaPipe finds as HandKeypoints."""

    def __init__(self, node: Node, params: TrackerParams, hands: Any) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from worldscape_msgs.msg import HandKeypoints

        self.node = node
        self.params = params
        self.hands = hands  # MediaPipe's solutions.hands.Hands
        self.K: np.ndarray | None = None  # (3, 3) from the latest CameraInfo, in the model's pixel convention
        self._pub = node.create_publisher(HandKeypoints, 'hand_keypoints', 10)
        node.create_subscription(CameraInfo, params.camera_info_topic, self.on_info, qos_profile_sensor_data)
        node.create_subscription(Image, params.image_topic, self.on_image, qos_profile_sensor_data)

    def on_info(self, msg: CameraInfo) -> None:
        # MediaPipe's landmarks scaled by the image size are continuous coordinates: pixel centres at +0.5
        self.K = k_from_ros(np.asarray(msg.k, dtype=np.float64).reshape(3, 3))

    def on_image(self, msg: Image) -> None:
        log = self.node.get_logger()
        if self.K is None:
            log.warning(f'no CameraInfo on {self.params.camera_info_topic} yet: skipping images',
                        throttle_duration_sec=5)
            return
        if msg.encoding not in ('rgb8', 'bgr8'):
            log.warning(f'unsupported encoding {msg.encoding}', throttle_duration_sec=5)
            return
        results = self.hands.process(np.ascontiguousarray(rgb_pixels(msg)))
        for det in detections_from_mediapipe(results, self.K, msg.width, msg.height, self.params.mirrored_input):
            self._pub.publish(to_message(det, msg.header))


def main(argv: list[str] | None = None) -> int:
    """Node: hands in `image_topic` -> HandKeypoints on `hand_keypoints`; exit code 2 without MediaPipe."""
    with companion_node('hand_tracker', argv) as node:
        params = declare_params(node, TrackerParams)
        try:
            mp = import_mediapipe()
        except RuntimeError as exc:
            return refuse(node, exc)
        hands = mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=params.max_hands,
                                         min_detection_confidence=params.min_detection_confidence,
                                         min_tracking_confidence=0.5)
        try:
            HandTracker(node, params, hands)  # its subscriptions hold it while the node spins
            spin_until_interrupted(node)
        finally:
            hands.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
