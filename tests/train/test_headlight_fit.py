import math

import numpy as np
import pytest
import torch

from tests.eval.conftest import TexturedRoom, drive, render_all
from worldscape_ros.data.episode import Episode, write_episode
from worldscape_ros.errors import TrainError
from worldscape_ros.model.headlight import normals, shading
from worldscape_ros.model.kinematics import NavAction
from worldscape_ros.train.headlight_fit import fit_headlight


def turning_episode(tmp_path, share: float):
    """A turn in place in a room lit evenly, seen by a camera carrying a light of `share`, written to disk."""
    room = TexturedRoom(seed=2)
    poses = drive([NavAction(yaw_rate=math.radians(30))] * 11)
    rgb, depth = render_all(room, poses)
    lit = []
    for frame, d in zip(rgb, depth):
        faces = -normals(torch.from_numpy(d.astype(np.float32)), torch.from_numpy(room.K).float())[2]
        lit.append(np.round(frame * shading(faces, share).numpy()[..., None]).clip(0, 255).astype(np.uint8))
    ep = Episode(np.stack(lit), depth, poses, room.K, np.zeros((len(poses), 5), np.float32))
    return write_episode(tmp_path / f'turn_{share}.episode.npz', ep)


@pytest.mark.parametrize('share', [0.0, 0.4])
def test_the_fit_finds_the_share_of_the_light_the_camera_carries(tmp_path, share):
    fit = fit_headlight([turning_episode(tmp_path, share)], shares=(0.0, 0.2, 0.4, 0.6), offsets=(4,), stride=3)
    assert fit.share == share and fit.pairs > 0
    assert max(fit.psnr.values()) == fit.psnr[share]


def test_bad_fits_are_refused_by_name(tmp_path):
    with pytest.raises(TrainError, match='no episodes'):
        fit_headlight([])
    path = turning_episode(tmp_path, 0.0)
    with pytest.raises(TrainError, match=r'every share must be in \[0, 1\)'):
        fit_headlight([path], shares=(0.0, 1.0))
    with pytest.raises(TrainError, match='offsets and stride must be >= 1'):
        fit_headlight([path], offsets=(0,))
    with pytest.raises(TrainError, match='no frame pair'):
        fit_headlight([path], offsets=(50,))
