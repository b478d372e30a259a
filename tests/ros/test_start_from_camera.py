"""The node starts from a camera image of any size: ~/reset_from_image fits it (and its camera_info) to the model
and publishes the fitted camera; the start_image parameter takes any size too."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo
from sim_harness import Harness
from worldscape_msgs.srv import ResetFromImage

from worldscape_ros.data.camera_adapt import intrinsics_from_fov, plan_fit
from worldscape_ros.model.kinematics import BaseState, camera_pose
from worldscape_ros.model.pixel_convention import k_to_ros
from worldscape_ros.ros import conversions as conv

pytestmark = pytest.mark.ros


def test_reset_from_a_larger_image_with_its_camera_info_publishes_the_fitted_camera():
    h = Harness()
    try:
        h.start()
        infos = h.subscribe(CameraInfo, 'camera/camera_info')
        rgb = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
        K = intrinsics_from_fov(640, 360, vfov_deg=45.0)
        request = ResetFromImage.Request()
        request.image = conv.numpy_to_image(rgb, 'rgb8', 0, 'camera_optical_frame')
        request.pose = conv.matrix_to_pose(camera_pose(BaseState(height=1.0)))
        request.camera_info = conv.camera_info(K, 640, 360, 0, 'camera_optical_frame')
        response = h.call(ResetFromImage, '/simulator/reset_from_image', request)
        assert response.success, response.message
        assert '640x360 resized' in response.message and 'trained on 75x60 deg' in response.message
        h.step(1)
        published = np.asarray(infos.wait_for(1)[-1].k).reshape(3, 3)
        np.testing.assert_allclose(published, k_to_ros(plan_fit(640, 360, 128, 96).intrinsics(K)), atol=1e-9)
        # camera_info of another size than the image: refused, naming both
        request.camera_info = conv.camera_info(K, 320, 180, 0, 'camera_optical_frame')
        response = h.call(ResetFromImage, '/simulator/reset_from_image', request)
        assert not response.success and 'camera_info is 320x180, the image 640x360' in response.message
    finally:
        h.close()


def test_a_start_image_of_another_size_configures(tmp_path):
    import imageio.v3 as iio

    start = tmp_path / 'phone.png'
    iio.imwrite(start, np.full((240, 424, 3), 90, np.uint8))
    h = Harness({'start_image': str(start)})
    try:
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        # no camera given: the model's 60 deg vertical field of view, the 424 px width cropped to 128 px
        want = plan_fit(424, 240, 128, 96).intrinsics(intrinsics_from_fov(424, 240, vfov_deg=60.0))
        np.testing.assert_allclose(h.node.engine.intrinsics, want, atol=1e-9)
    finally:
        h.close()
