"""Metrics that need a pretrained network (FVD, FID, VBench-style imaging quality): computed only when the user
points at local weights (none can be downloaded here); otherwise reported as skipped, with the reason.

Expected files in the --pretrained-metrics folder (TorchScript, as the StyleGAN-V / StyleGAN3 metric code
ships them):
- `inception-2015-12-05.pt`: FID; called as `net(images_uint8_NCHW, return_features=True)` -> (N, 2048).
- `i3d_torchscript.pt`: FVD; called as `net(videos_NCTHW_in_-1_1, rescale=False, resize=True,
  return_features=True)` -> (N, 400).
Imaging quality (MUSIQ) needs pyiqa, which is not installed: always skipped with that reason.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FID_FILE = 'inception-2015-12-05.pt'
FVD_FILE = 'i3d_torchscript.pt'
FVD_MIN_FRAMES = 10


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f'feature sets must be (N >= 2, D) with the same D, got {a.shape} and {b.shape}')
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(ca cb) = sum sqrt(eig(sa cb sa)) with sa = sqrt(ca): symmetric, so eigh is stable
    w, v = np.linalg.eigh(ca)
    sa = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    eig = np.linalg.eigvalsh(sa @ cb @ sa)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)


class PretrainedMetrics:
    """Collects generated and ground-truth videos per system, then scores them with the local networks."""

    def __init__(self, folder: str | Path | None) -> None:
        self.folder = Path(folder) if folder else None
        if self.folder is not None and not self.folder.is_dir():
            raise ValueError(f'--pretrained-metrics {self.folder} is not a folder')
        self.videos: dict[str, list[np.ndarray]] = {}
        self.real: list[np.ndarray] = []

    def skipped(self) -> dict[str, str]:
        out = {'imaging_quality': 'needs pyiqa and MUSIQ weights, not installed here'}
        for name, file in (('fid', FID_FILE), ('fvd', FVD_FILE)):
            if self.folder is None:
                out[name] = f'no --pretrained-metrics folder given (needs {file}; no weights can be downloaded here)'
            elif not (self.folder / file).is_file():
                out[name] = f'{self.folder / file} not found'
        return out

    @property
    def active(self) -> bool:
        return self.folder is not None and any((self.folder / f).is_file() for f in (FID_FILE, FVD_FILE))

    def add(self, real: np.ndarray, generated: dict[str, np.ndarray]) -> None:
        """real (T, H, W, 3) uint8 and each system's (T, H, W, 3), from one scenario."""
        if not self.active:
            return
        self.real.append(real)
        for name, video in generated.items():
            self.videos.setdefault(name, []).append(video)

    def compute(self) -> dict[str, dict[str, float]]:
        """system -> {'fid': ..., 'fvd': ...} for the networks present."""
        import torch

        if not self.active or not self.real:
            return {}
        assert self.folder is not None
        out: dict[str, dict[str, float]] = {name: {} for name in self.videos}
        if (self.folder / FID_FILE).is_file():
            net = _load(self.folder / FID_FILE)

            def feats(videos: list[np.ndarray]) -> np.ndarray:
                x = torch.from_numpy(np.concatenate([v[1:] for v in videos])).permute(0, 3, 1, 2)  # (N, 3, H, W)
                with torch.no_grad():
                    return net(x, return_features=True).double().numpy()

            real = feats(self.real)
            for name, vids in self.videos.items():
                out[name]['fid'] = frechet_distance(feats(vids), real)
        if (self.folder / FVD_FILE).is_file():
            net = _load(self.folder / FVD_FILE)

            def vfeats(videos: list[np.ndarray]) -> np.ndarray:
                usable = [v for v in videos if len(v) >= FVD_MIN_FRAMES]
                x = [torch.from_numpy(v).permute(3, 0, 1, 2).float() / 127.5 - 1 for v in usable]  # (3, T, H, W)
                with torch.no_grad():
                    return np.concatenate([net(v[None], rescale=False, resize=True, return_features=True)
                                           .double().numpy() for v in x])

            real = vfeats(self.real)
            if len(real) >= 2:
                for name, vids in self.videos.items():
                    out[name]['fvd'] = frechet_distance(vfeats(vids), real)
            else:
                log.warning('FVD needs at least two scenarios of %d frames or more', FVD_MIN_FRAMES)
        return out


def _load(path: Path) -> Any:
    import torch

    with warnings.catch_warnings():  # TorchScript is what the metric networks ship as
        warnings.simplefilter('ignore', DeprecationWarning)
        return torch.jit.load(str(path), map_location='cpu').eval()
