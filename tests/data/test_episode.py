import json
import zipfile

import numpy as np
import pytest

from worldscape_ros.data.episode import Episode, read_episode, read_header, write_episode
from worldscape_ros.errors import EpisodeFormatError


def _episode(T=4, H=12, W=16, hands=True, seed=0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.2, 20.0, (T, H, W)).astype(np.float32)
    depth[0, 0, 0] = np.nan
    kw = {}
    if hands:
        kw = dict(keypoints3d=rng.normal(size=(T, 21, 3)), keypoints2d=rng.uniform(0, W, (T, 21, 2)),
                  visibility=rng.random((T, 21)) > 0.5, handedness='left')
    return Episode(rgb=rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8), depth=depth,
                   poses=np.repeat(np.eye(4)[None], T, 0), intrinsics=np.eye(3),
                   actions=rng.normal(size=(T, 5)).astype(np.float32), meta={'kind': 'manip', 'fps': 10.0}, **kw)


@pytest.mark.parametrize('hands', [True, False])
def test_episode_round_trips(tmp_path, hands):
    ep = _episode(hands=hands)
    path = write_episode(tmp_path / 'a.episode.npz', ep)
    back = read_episode(path)
    assert np.array_equal(back.rgb, ep.rgb)
    assert np.isnan(back.depth[0, 0, 0])
    ok = ~np.isnan(ep.depth)
    assert np.abs(back.depth[ok] - ep.depth[ok]).max() <= 0.0005 + 1e-6  # millimetre PNG: 0.5 mm rounding
    np.testing.assert_array_equal(back.poses, ep.poses)
    np.testing.assert_array_equal(back.actions, ep.actions)
    assert back.meta['kind'] == 'manip' and back.meta['format_version'] == 1
    if hands:
        np.testing.assert_allclose(back.keypoints3d, ep.keypoints3d, rtol=1e-6)
        np.testing.assert_array_equal(back.visibility, ep.visibility)
        assert back.handedness == 'left'
    else:
        assert back.keypoints3d is None and not back.has_hands
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_truncated_episode_is_a_clear_error(tmp_path):
    path = write_episode(tmp_path / 'a.episode.npz', _episode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeFormatError, match='a.episode.npz: corrupt or truncated'):
        read_episode(path)


def test_corrupt_frame_is_a_clear_error(tmp_path):
    path = tmp_path / 'a.episode.npz'
    write_episode(path, _episode())
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays['rgb_png'] = np.zeros_like(arrays['rgb_png'])
    np.savez(path, **arrays)
    with pytest.raises(EpisodeFormatError, match='rgb frame 0 is corrupt'):
        read_episode(path)


def test_future_format_version_is_refused(tmp_path):
    path = tmp_path / 'a.episode.npz'
    write_episode(path, _episode())
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(arrays['header'].tobytes())
    header['format_version'] = 99
    arrays['header'] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(EpisodeFormatError, match='format version 99 is from the future'):
        read_episode(path)
    with pytest.raises(EpisodeFormatError, match='from the future'):
        read_header(path)


def test_not_an_episode_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(EpisodeFormatError, match='no such episode file'):
        read_episode(tmp_path / 'nope.episode.npz')
    other = tmp_path / 'x.episode.npz'
    np.savez(other, foo=np.zeros(3))
    with pytest.raises(EpisodeFormatError, match='not an episode file'):
        read_episode(other)
    text = tmp_path / 'y.episode.npz'
    text.write_text('hello')
    with pytest.raises(EpisodeFormatError, match='corrupt or truncated'):
        read_episode(text)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError('No space left on device')

    monkeypatch.setattr(np, 'savez', boom)
    with pytest.raises(OSError, match='No space left'):
        write_episode(tmp_path / 'a.episode.npz', _episode())
    assert list(tmp_path.iterdir()) == []


def test_inconsistent_shapes_are_rejected():
    ep = _episode()
    with pytest.raises(ValueError, match=r'episode depth must have shape \(4, 12, 16\)'):
        Episode(rgb=ep.rgb, depth=ep.depth[:, :5], poses=ep.poses, intrinsics=ep.intrinsics, actions=ep.actions)


def test_zip_container_holds_no_pickle(tmp_path):
    path = write_episode(tmp_path / 'a.episode.npz', _episode())
    with zipfile.ZipFile(path) as z:
        assert all(n.endswith('.npy') for n in z.namelist())
    with np.load(path, allow_pickle=False) as f:
        assert 'header' in f.files
