"""A torch Dataset of fixed-length clips over every episode file under a folder."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from worldscape_ros.data.episode import EPISODE_KINDS, EPISODE_SUFFIX, EpisodeFile, read_header
from worldscape_ros.errors import EpisodeFormatError


class ClipDataset(Dataset):
    """Clips of `clip_len` frames taken every `stride` frames, starting at every frame that fits.

    Items are dicts: 'rgb' (T, 3, H, W) float32 in [0, 1], 'depth' (T, 1, H, W) float32 metres (NaN:
    unknown), 'poses' (T, 4, 4), 'intrinsics' (3, 3), 'actions' (T, 5) (row 0 zeros; with stride > 1 the
    mean command over the skipped frames), 'keypoints' (T, 21, 3) camera frame (zeros without hands),
    'has_hands' bool scalar, 'kind' 'nav' or 'manip'. Episodes are kept PNG-encoded in a small LRU cache and
    only the clip's frames are decoded.
    """

    def __init__(self, root: str | Path, clip_len: int, stride: int = 1, kinds: Iterable[str] | None = None,
                 cache_episodes: int = 8) -> None:
        self.root = Path(root)
        if clip_len <= 0 or stride <= 0:
            raise ValueError(f'clip_len and stride must be positive, got {clip_len} and {stride}')
        if not self.root.is_dir():
            raise EpisodeFormatError(f'{self.root}: no such episode folder')
        wanted = tuple(kinds) if kinds is not None else EPISODE_KINDS
        unknown = [k for k in wanted if k not in EPISODE_KINDS]
        if unknown:
            raise ValueError(f'unknown episode kinds {unknown}; expected some of {", ".join(EPISODE_KINDS)}')
        self.clip_len, self.stride = clip_len, stride
        span = (clip_len - 1) * stride + 1  # frames one clip covers
        self.files: list[Path] = []
        index: list[tuple[int, int]] = []
        for path in sorted(self.root.rglob(f'*{EPISODE_SUFFIX}')):
            header = read_header(path)
            if header['meta'].get('kind') not in wanted:
                continue
            n_starts = int(header['num_frames']) - span + 1
            if n_starts > 0:
                self.files.append(path)
                index.extend((len(self.files) - 1, s) for s in range(n_starts))
        self._index = np.array(index, dtype=np.int64).reshape(-1, 2)
        self._cache: OrderedDict[int, EpisodeFile] = OrderedDict()
        self._cache_size = max(1, cache_episodes)

    def __len__(self) -> int:
        return len(self._index)

    def _episode(self, file_index: int) -> EpisodeFile:
        if file_index in self._cache:
            self._cache.move_to_end(file_index)
            return self._cache[file_index]
        episode = EpisodeFile(self.files[file_index])
        self._cache[file_index] = episode
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return episode

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | str]:
        if not -len(self) <= i < len(self):
            raise IndexError(f'clip index {i} out of range for {len(self)} clips')
        file_index, start = (int(v) for v in self._index[i])
        ep = self._episode(file_index)
        frames = start + self.stride * np.arange(self.clip_len)  # (T,)
        actions = ep.actions[frames].copy()
        if self.stride > 1:  # the mean command over the frames each step skips
            for k in range(1, self.clip_len):
                actions[k] = ep.actions[frames[k - 1] + 1: frames[k] + 1].mean(axis=0)
        actions[0] = 0.0
        keypoints = ep.keypoints3d[frames] if ep.keypoints3d is not None else np.zeros((self.clip_len, 21, 3))
        return {
            'rgb': torch.from_numpy(ep.rgb(frames)).permute(0, 3, 1, 2).float() / 255.0,  # (T, 3, H, W)
            'depth': torch.from_numpy(ep.depth(frames))[:, None],  # (T, 1, H, W)
            'poses': torch.from_numpy(ep.poses[frames]).float(),  # (T, 4, 4)
            'intrinsics': torch.from_numpy(ep.intrinsics).float(),  # (3, 3)
            'actions': torch.from_numpy(actions).float(),  # (T, 5)
            'keypoints': torch.from_numpy(np.asarray(keypoints, dtype=np.float32)),  # (T, 21, 3)
            'has_hands': torch.tensor(ep.keypoints3d is not None),
            'kind': str(ep.meta.get('kind', 'nav')),
        }
