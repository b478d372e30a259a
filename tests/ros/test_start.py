"""The simulator's start: device, checkpoint path and start image are checked at configure, with the parameter
named in the error."""

import numpy as np
import pytest

from worldscape_ros.errors import CheckpointError, ConfigError
from worldscape_ros.model.config import load_config
from worldscape_ros.ros.params import SimulatorParams
from worldscape_ros.ros.start import (
    check_checkpoint_path,
    load_start_depth,
    load_start_image,
    resolve_device,
    start_view,
)

CFG = load_config('ws-tiny')


def test_auto_device_is_one_torch_has():
    assert resolve_device('auto') in ('cpu', 'cuda')
    assert resolve_device('cpu') == 'cpu'


def test_a_checkpoint_path_must_be_a_file(tmp_path):
    check_checkpoint_path(None)
    check_checkpoint_path('random')
    with pytest.raises(CheckpointError, match='is a directory'):
        check_checkpoint_path(str(tmp_path))
    with pytest.raises(CheckpointError, match='does not exist'):
        check_checkpoint_path(str(tmp_path / 'none.safetensors'))


def test_a_start_image_of_any_size_is_fitted_to_the_model(tmp_path):
    path = tmp_path / 'start.npy'
    np.save(path, np.full((240, 320, 4), 128, np.uint8))
    view, notes = start_view(SimulatorParams(start_image=str(path), camera_pitch=0.1), CFG)
    assert view is not None and view.rgb.shape == (CFG.height, CFG.width, 3) and view.depth is None
    assert view.K.shape == (3, 3) and view.pose.shape == (4, 4)
    assert any('assumed' in note for note in notes)  # no camera given: the model's field of view, said


def test_no_start_image_means_the_synthetic_scene():
    assert start_view(SimulatorParams(), CFG) == (None, [])


def test_unreadable_start_images_and_depths_are_refused_naming_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match="start_image '.*missing.png' does not exist"):
        load_start_image(str(tmp_path / 'missing.png'), 96, 128)
    bad = tmp_path / 'float.npy'
    np.save(bad, np.zeros((96, 128, 3), np.float32))
    with pytest.raises(ConfigError, match='must be 8-bit RGB, got dtype float32'):
        load_start_image(str(bad), 96, 128)
    with pytest.raises(ConfigError, match='start_depth .* must be float HxW = 96x128'):
        load_start_depth(str(bad), 96, 128)
    junk = tmp_path / 'junk.npy'
    junk.write_bytes(b'not numpy')
    with pytest.raises(ConfigError, match='start_depth .* could not be read'):
        load_start_depth(str(junk), 96, 128)


def _request(width=160, height=120, info_size=None, x=0.0):
    from worldscape_msgs.srv import ResetFromImage

    from worldscape_ros.model.camera import intrinsics_from_fov
    from worldscape_ros.ros import conversions as conv

    request = ResetFromImage.Request()
    request.image = conv.rgb_to_image(np.full((height, width, 3), 90, np.uint8), 0, 'camera_optical_frame')
    pose = np.eye(4)
    pose[0, 3] = x
    request.pose = conv.matrix_to_pose(pose)
    if info_size is not None:
        w, h = info_size
        request.camera_info = conv.camera_info(intrinsics_from_fov(w, h, 60.0), w, h, 0, 'camera_optical_frame')
    return request


def test_a_reset_request_is_fitted_to_the_model_with_its_pose():
    from worldscape_ros.ros.start import start_from_request

    start, c2w = start_from_request(_request(info_size=(160, 120), x=2.0), CFG, max_position=10.0)
    assert start.rgb.shape == (CFG.height, CFG.width, 3) and start.depth is None
    assert c2w[0, 3] == 2.0


@pytest.mark.parametrize(('request_args', 'match'), [
    ({'info_size': (64, 48)}, 'camera_info is 64x48, the image 160x120'),
    ({'x': 20.0}, r'pose.position \[20, 0, 0\] is outside the working range'),
])
def test_a_reset_request_that_does_not_fit_is_refused_naming_the_field(request_args, match):
    from worldscape_ros.ros.start import start_from_request

    with pytest.raises(ValueError, match=match):
        start_from_request(_request(**request_args), CFG, max_position=10.0)
