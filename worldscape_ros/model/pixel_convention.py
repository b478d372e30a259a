"""The model's pixel convention and ROS's. The model puts pixel (u, v)'s centre at (u + 0.5, v + 0.5) (camera.py);
ROS's CameraInfo, like OpenCV and depth_image_proc, puts it at (u, v). The same camera's K therefore differs by
half a pixel in the principal point. numpy only: the ROS nodes and the bag tools read it without torch.
"""

from __future__ import annotations

import numpy as np

# pixel coordinates: ROS's = the model's - 0.5
_TO_ROS = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
_FROM_ROS = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])


def k_to_ros(K: np.ndarray) -> np.ndarray:
    """The model's K (3, 3) as CameraInfo.k holds it (pixel centres at whole numbers)."""
    return _TO_ROS @ np.asarray(K, dtype=np.float64)


def k_from_ros(k: np.ndarray) -> np.ndarray:
    """CameraInfo.k (3, 3) as the model's K (pixel centres at +0.5)."""
    return _FROM_ROS @ np.asarray(k, dtype=np.float64)
