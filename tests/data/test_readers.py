import cv2
import h5py
import numpy as np
import pytest

from worldscape_ros.data.egodex import _GL_TO_CV, joint_names, read_egodex
from worldscape_ros.data.realestate10k import read_realestate10k, write_realestate10k
from worldscape_ros.errors import EpisodeFormatError
from worldscape_ros.synthetic.episodes import manip_episode, nav_episode


@pytest.fixture(scope='module')
def nav():
    return nav_episode(3, 'mixed', 5, 40, 30)


def _write_re10k(tmp_path, ep):
    stamps = 1_000_000 + np.arange(ep.num_frames) * 33_366
    folder = tmp_path / 'clip'
    folder.mkdir()
    for stamp, rgb in zip(stamps, ep.rgb):
        cv2.imwrite(str(folder / f'{stamp}.png'), rgb[..., ::-1])
    camera_file = tmp_path / 'clip.txt'
    write_realestate10k(camera_file, 'https://www.youtube.com/watch?v=abc', stamps, ep.intrinsics, ep.poses,
                        ep.rgb.shape[2], ep.rgb.shape[1])
    return camera_file


def test_realestate10k_round_trips_poses_intrinsics_and_frames(tmp_path, nav):
    back = read_realestate10k(_write_re10k(tmp_path, nav))
    np.testing.assert_allclose(back.poses, nav.poses, atol=1e-9)
    np.testing.assert_allclose(back.intrinsics, nav.intrinsics, atol=1e-9)
    assert np.array_equal(back.rgb, nav.rgb)
    assert np.isnan(back.depth).all() and not back.actions.any()
    assert back.meta['url'].endswith('abc') and back.meta['fps'] == pytest.approx(29.97, abs=0.01)
    half = read_realestate10k(tmp_path / 'clip.txt', size=(20, 15))
    np.testing.assert_allclose(half.intrinsics[:2], nav.intrinsics[:2] / 2)


def test_realestate10k_bad_input_names_the_cause(tmp_path, nav):
    camera_file = _write_re10k(tmp_path, nav)
    lines = camera_file.read_text().splitlines()
    camera_file.write_text('\n'.join(lines[:2] + ['1 2 3'] + lines[3:]))
    with pytest.raises(EpisodeFormatError, match=r'clip.txt:3: expected 19 values, got 3'):
        read_realestate10k(camera_file)
    camera_file.write_text('\n'.join(lines))
    next((tmp_path / 'clip').iterdir()).unlink()
    with pytest.raises(EpisodeFormatError, match='no image for timestamp'):
        read_realestate10k(camera_file)
    with pytest.raises(EpisodeFormatError, match='frame folder .* does not exist'):
        read_realestate10k(camera_file, frames_dir=tmp_path / 'nowhere')


def _write_egodex(tmp_path, ep, side='left'):
    h5 = tmp_path / 'ep.hdf5'
    world = np.einsum('tij,tkj->tki', ep.poses[:, :3, :3], ep.keypoints3d.astype(np.float64)) + \
        ep.poses[:, None, :3, 3]  # (T, 21, 3)
    with h5py.File(h5, 'w') as f:
        f['transforms/camera'] = ep.poses @ _GL_TO_CV  # ARKit axes: x right, y up, z backwards
        f['camera/intrinsic'] = ep.intrinsics
        for k, name in enumerate(joint_names(side)):
            T = np.tile(np.eye(4), (ep.num_frames, 1, 1))
            T[:, :3, 3] = world[:, k]
            f[f'transforms/{name}'] = T
            f[f'confidences/{name}'] = np.full(ep.num_frames, 0.9)
        f['transforms/leftForearm'] = np.tile(np.eye(4), (ep.num_frames, 1, 1))  # joints without a landmark
    H, W = ep.rgb.shape[1:3]
    writer = cv2.VideoWriter(str(tmp_path / 'ep.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 30.0, (W, H))
    for rgb in ep.rgb:
        writer.write(np.ascontiguousarray(rgb[..., ::-1]))
    writer.release()
    return h5


def test_egodex_round_trips_keypoints_and_camera(tmp_path):
    ep = manip_episode(2, 'reach', 4, 64, 48)
    back = read_egodex(_write_egodex(tmp_path, ep))
    assert back.handedness == 'left' and back.num_frames == 4
    np.testing.assert_allclose(back.poses, ep.poses, atol=1e-9)
    np.testing.assert_allclose(back.keypoints3d, ep.keypoints3d, atol=1e-5)
    np.testing.assert_allclose(back.keypoints2d, ep.keypoints2d, atol=1e-3)
    inside = (ep.keypoints2d >= 0).all(-1) & (ep.keypoints2d[..., 0] < 64) & (ep.keypoints2d[..., 1] < 48)
    assert np.array_equal(back.visibility, inside)  # no depth in EgoDex: visible = in view and confident
    assert np.abs(back.rgb.astype(int) - ep.rgb).mean() < 20  # lossy video


def test_egodex_bad_input_names_the_cause(tmp_path):
    ep = manip_episode(2, 'reach', 2, 32, 24)
    h5 = _write_egodex(tmp_path, ep)
    with pytest.raises(EpisodeFormatError, match='no complete right hand'):
        read_egodex(h5, hand='right')
    with pytest.raises(ValueError, match="hand must be 'left', 'right' or 'auto'"):
        read_egodex(h5, hand='both')
    (tmp_path / 'ep.mp4').unlink()
    with pytest.raises(EpisodeFormatError, match='no such video'):
        read_egodex(h5)
    bad = tmp_path / 'bad.hdf5'
    bad.write_bytes(b'not hdf5')
    with pytest.raises(EpisodeFormatError, match='not a readable EgoDex HDF5 file'):
        read_egodex(bad)
