"""`worldscape rollout --start-depth`: the image start's depth reaches the engine as frame 0's depth."""

import cv2
import numpy as np
import pytest

from worldscape_ros.data.depth_io import DepthFileError, save_depth
from worldscape_ros.tools.rollout import Start, start_session


def _image(engine, tmp_path):
    cfg = engine.config
    rgb = np.random.default_rng(1).integers(0, 256, (cfg.height, cfg.width, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'start.png'), rgb[..., ::-1])
    return rgb


def test_a_start_depth_file_becomes_frame_zero_depth(engine, tmp_path):
    cfg = engine.config
    _image(engine, tmp_path)
    depth = np.linspace(0.5, 6.0, cfg.height * cfg.width, dtype=np.float32).reshape(cfg.height, cfg.width)
    save_depth(tmp_path / 'd.png', depth)
    frame = start_session(engine, Start(image=tmp_path / 'start.png', depth=tmp_path / 'd.png'))
    np.testing.assert_allclose(frame.depth, depth, atol=6e-4)


def test_without_a_start_depth_the_engine_predicts_its_own(engine, tmp_path):
    _image(engine, tmp_path)
    frame = start_session(engine, Start(image=tmp_path / 'start.png'))
    assert np.isfinite(frame.depth).all() and (frame.depth > 0).all()


def test_a_start_depth_of_the_wrong_size_is_refused(engine, tmp_path):
    _image(engine, tmp_path)
    save_depth(tmp_path / 'd.npy', np.ones((10, 12), np.float32))
    with pytest.raises(DepthFileError, match='is 12x10'):
        start_session(engine, Start(image=tmp_path / 'start.png', depth=tmp_path / 'd.npy'))


def test_a_start_depth_with_a_scene_start_is_refused(engine, tmp_path):
    with pytest.raises(ValueError, match='goes with an image start'):
        start_session(engine, Start('room', 2, depth=tmp_path / 'd.npy'))
