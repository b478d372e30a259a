import numpy as np
import pytest
import torch

from worldscape_ros.eval.pretrained import FID_FILE, PretrainedMetrics, frechet_distance


def test_frechet_distance_is_zero_for_identical_sets_and_matches_the_gaussian_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = rng.normal(size=(4000, 3)) * 2.0 + 1.0  # mean shift 1 per axis, std 2
    # |mu|^2 + tr(Ca + Cb - 2 sqrt(Ca Cb)) = 3 + 3 * (1 + 4 - 4) = 6
    assert frechet_distance(a, b) == pytest.approx(6.0, rel=0.1)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(ValueError, match='same D'):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))


def test_without_weights_every_pretrained_metric_is_skipped_with_a_reason(tmp_path):
    none = PretrainedMetrics(None)
    assert not none.active
    reasons = none.skipped()
    assert set(reasons) == {'fid', 'fvd', 'imaging_quality'}
    assert 'no --pretrained-metrics folder' in reasons['fid']
    assert 'not found' in PretrainedMetrics(tmp_path).skipped()['fvd']


class _TinyInception(torch.nn.Module):
    """Stands in for the TorchScript Inception: the same call signature, mean colour features."""

    def forward(self, x: torch.Tensor, return_features: bool = True) -> torch.Tensor:
        return x.float().mean(dim=(2, 3))


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_fid_runs_on_a_local_torchscript_network(tmp_path):
    torch.jit.script(_TinyInception()).save(str(tmp_path / FID_FILE))
    metrics = PretrainedMetrics(tmp_path)
    assert metrics.active and 'fid' not in metrics.skipped()
    rng = np.random.default_rng(0)
    real = rng.integers(0, 255, (2, 6, 8, 8, 3), dtype=np.uint8)
    for video in real:
        metrics.add(video, {'copy': video, 'dark': video // 4})
    fid = metrics.compute()
    assert fid['copy']['fid'] == pytest.approx(0.0, abs=1e-6)
    assert fid['dark']['fid'] > 100
