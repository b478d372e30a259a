import numpy as np
import pytest
import torch

from worldscape_ros.data.dataset import ClipDataset
from worldscape_ros.data.episode import Episode, write_episode
from worldscape_ros.errors import EpisodeFormatError


def _write(path, T, kind, hands):
    rng = np.random.default_rng(T)
    kw = {}
    if hands:
        kw = dict(keypoints3d=np.ones((T, 21, 3)), keypoints2d=np.ones((T, 21, 2)), visibility=np.ones((T, 21), bool),
                  handedness='right')
    write_episode(path, Episode(rgb=rng.integers(0, 256, (T, 8, 10, 3), dtype=np.uint8),
                                depth=np.full((T, 8, 10), 2.0, np.float32), poses=np.repeat(np.eye(4)[None], T, 0),
                                intrinsics=np.eye(3), actions=np.arange(T * 5, dtype=np.float32).reshape(T, 5),
                                meta={'kind': kind}, **kw))


def test_clips_cover_every_start_and_have_the_documented_shapes(tmp_path):
    _write(tmp_path / 'a.episode.npz', 10, 'nav', False)
    _write(tmp_path / 'sub' / 'b.episode.npz', 6, 'manip', True)
    ds = ClipDataset(tmp_path, clip_len=4, stride=2)
    assert len(ds) == (10 - 7 + 1) + 0  # manip episode is too short for a span of 7 frames
    ds = ClipDataset(tmp_path, clip_len=4)
    assert len(ds) == 7 + 3
    item = ds[0]
    assert item['rgb'].shape == (4, 3, 8, 10) and item['rgb'].dtype == torch.float32
    assert 0.0 <= item['rgb'].min() and item['rgb'].max() <= 1.0
    assert item['depth'].shape == (4, 1, 8, 10) and torch.all(item['depth'] == 2.0)
    assert item['poses'].shape == (4, 4, 4) and item['intrinsics'].shape == (3, 3)
    assert item['actions'].shape == (4, 5) and not item['actions'][0].any()
    assert item['keypoints'].shape == (4, 21, 3) and not item['keypoints'].any()
    assert item['has_hands'].item() is False and item['kind'] == 'nav'
    last = ds[len(ds) - 1]
    assert last['has_hands'].item() is True and last['kind'] == 'manip' and last['keypoints'].any()


def test_kinds_filter_and_stride_average_actions(tmp_path):
    _write(tmp_path / 'a.episode.npz', 10, 'nav', False)
    _write(tmp_path / 'b.episode.npz', 10, 'manip', True)
    assert len(ClipDataset(tmp_path, 3, kinds=['manip'])) == 8
    item = ClipDataset(tmp_path, 3, stride=2, kinds=['nav'])[0]
    actions = np.arange(50, dtype=np.float32).reshape(10, 5)
    np.testing.assert_allclose(item['actions'][1].numpy(), actions[1:3].mean(0))
    loader = torch.utils.data.DataLoader(ClipDataset(tmp_path, 3), batch_size=4)
    batch = next(iter(loader))
    assert batch['rgb'].shape == (4, 3, 3, 8, 10)


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(EpisodeFormatError, match='no such episode folder'):
        ClipDataset(tmp_path / 'none', 4)
    with pytest.raises(ValueError, match='clip_len and stride must be positive'):
        ClipDataset(tmp_path, 0)
    with pytest.raises(ValueError, match='unknown episode kinds'):
        ClipDataset(tmp_path, 2, kinds=['cooking'])
    with pytest.raises(IndexError, match='out of range'):
        ClipDataset(tmp_path, 2)[0]
