"""The scene memory's points, as columns: position, colour, trust, age, and the lighting each observed point was
seen under (model/headlight.py); the sorted store that holds them by voxel key (scene_memory.py), and the points
taken out of it and put back (an object picked up and put down, grasp.py)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldscape_ros.model.headlight import facing
from worldscape_ros.model.scene_index import merge_positions, scattered

LIGHTING_SCALE = 127  # a unit normal's components and a facing held as int8


@dataclass
class ScenePoints:
    """Points taken out of a store (or to be put into one), each with its colour, trust and age."""

    xyz: torch.Tensor  # (N, 3) metres
    rgb: torch.Tensor  # (N, 3) uint8
    trust: torch.Tensor  # (N,) uint8: trust * 255
    born: torch.Tensor  # (N,) int32: the frame index that made the point
    lighting: torch.Tensor | None = None  # (N, 4) int8: see SortedPoints (None: unknown, as 0)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def moved(self, transform: torch.Tensor) -> ScenePoints:
        """The points carried by a rigid (4, 4) transform, their normals turned with them."""
        T = transform.to(self.xyz)
        lighting = None
        if self.lighting is not None:
            normal = _quantised(self.lighting[:, :3].float() @ T[:3, :3].T / LIGHTING_SCALE)
            lighting = torch.cat([normal, self.lighting[:, 3:]], 1)
        return ScenePoints(self.xyz @ T[:3, :3].T + T[:3, 3], self.rgb, self.trust, self.born, lighting)

    def at(self, select: torch.Tensor) -> ScenePoints:
        """The points where `select` (N,) bool is true."""
        return ScenePoints(self.xyz[select], self.rgb[select], self.trust[select], self.born[select],
                           None if self.lighting is None else self.lighting[select])


def _quantised(x: torch.Tensor) -> torch.Tensor:
    """Values in [-1, 1] -> int8 * LIGHTING_SCALE."""
    return (x.clamp(-1, 1) * LIGHTING_SCALE).round().to(torch.int8)


def _facing(lighting: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """(..., 4 or 3) held normals, (3,) a camera's forward axis -> (...) int8: how they face that camera, as held."""
    return _quantised(facing(lighting[..., :3].float() / LIGHTING_SCALE, forward))


def held_lighting(normal: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """(N, 3) unit world normals (0: unknown) of points seen by a camera with forward axis (3,) -> (N, 4) int8:
    the lighting column."""
    normal = _quantised(normal)
    return torch.cat([normal, _facing(normal, forward)[:, None]], 1)


def facings(lighting: torch.Tensor, forward: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 4) lighting, (3,) a camera's forward axis -> how each point faced the camera that saw it, and how it
    faces this one: (...) float each, in [0, 1], as held (the same when the camera is the same)."""
    return lighting[..., 3].float() / LIGHTING_SCALE, _facing(lighting, forward).float() / LIGHTING_SCALE


@dataclass
class SortedPoints:
    """Points with their voxel keys, ascending (one point per voxel)."""

    xyz: torch.Tensor  # (N, 3) world metres
    rgb: torch.Tensor  # (N, 3) uint8
    trust: torch.Tensor  # (N,) uint8: trust * 255
    born: torch.Tensor  # (N,) int32: frame index
    # (N, 4) int8 * LIGHTING_SCALE: the unit surface normal (0: unknown) and how it faced the camera that saw it
    # (model/headlight.py): the colour is held as seen, and lit again for a camera that faces it otherwise
    lighting: torch.Tensor
    keys: torch.Tensor  # (N,) int64 voxel keys, ascending

    @classmethod
    def empty(cls, device: torch.device) -> SortedPoints:
        return cls(torch.zeros(0, 3, device=device), torch.zeros(0, 3, dtype=torch.uint8, device=device),
                   torch.zeros(0, dtype=torch.uint8, device=device), torch.zeros(0, dtype=torch.int32, device=device),
                   torch.zeros(0, 4, dtype=torch.int8, device=device), torch.zeros(0, dtype=torch.int64, device=device))

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def lacks(self, keys: torch.Tensor) -> torch.Tensor:
        """(n,) bool: which of the ascending `keys` (n,) are not held."""
        held = len(self)
        if not held:
            return torch.ones_like(keys, dtype=torch.bool)
        return self.keys[torch.searchsorted(self.keys, keys).clamp_max(held - 1)] != keys

    def merged(self, new: SortedPoints) -> tuple[SortedPoints, torch.Tensor, torch.Tensor]:
        """These points and `new` ones (voxels not held here) in one sorted list, and where each list's entries
        went in it."""
        at_old, at_new = merge_positions(self.keys, new.keys)
        return SortedPoints(*(scattered(a, at_old, b, at_new) for a, b in zip(self.columns(), new.columns()))), \
            at_old, at_new

    def at(self, index: torch.Tensor) -> SortedPoints:
        return SortedPoints(*(c[index] for c in self.columns()))

    def columns(self) -> tuple[torch.Tensor, ...]:
        return self.xyz, self.rgb, self.trust, self.born, self.lighting, self.keys


def unique_first(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique keys and the index of each one's first occurrence."""
    uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    first = torch.full((len(uniq),), len(keys), dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(keys), device=keys.device), reduce='amin')
    return uniq, first
