"""The scene memory's coarse spatial index: the store's points grouped by cell (a cube of 2^bits voxels a side),
so that a render projects the points of the cells that can be in the camera's view, not every point held.

Voxel keys (scene_memory.py) pack a point's voxel coordinates, offset by 2^20, in 21 bits each:
x << 42 | y << 21 | z. A cell key packs the same coordinates shifted right by `bits`. The index is kept up to date
as the store merges, prunes and gives points away, in linear time (no sort of the store).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

VOXEL_BITS = 21  # per axis in a voxel key
VOXEL_OFFSET = 1 << 20  # voxel coordinate of the world origin
CELL_BITS = 7  # a cell is 128 voxels a side (0.26 m at 2 mm): a few thousand cells over a long tour


def cell_keys(keys: torch.Tensor, bits: int) -> torch.Tensor:
    """The cell key of each voxel key (N,) int64."""
    m = (1 << VOXEL_BITS) - 1
    c = VOXEL_BITS - bits
    x, y, z = keys >> 2 * VOXEL_BITS, (keys >> VOXEL_BITS) & m, keys & m
    return ((x >> bits) << 2 * c) | ((y >> bits) << c) | (z >> bits)


def merge_positions(old: torch.Tensor, new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the entries of two ascending lists go in their merge, new entries before equal old ones: old (N,),
    new (n,) -> (N,), (n,) positions in the merged (N + n,) list.

    Each entry's place is its own index plus the count of the other list's entries before it; linear, where a
    sort of both is not. The new entries before old entry i are those inserted at or before it: the old list
    splits into n + 1 runs between the insertion points, run j shifted by j (no search over the old list).
    """
    held, n = len(old), len(new)
    below = torch.searchsorted(old, new)  # (n,) old entries before each new one
    runs = torch.diff(below, prepend=below.new_zeros(1), append=below.new_full((1,), held))
    shift = torch.repeat_interleave(torch.arange(n + 1, device=old.device), runs, output_size=held)
    return torch.arange(held, device=old.device) + shift, torch.arange(n, device=old.device) + below


def scattered(old: torch.Tensor, at_old: torch.Tensor, new: torch.Tensor, at_new: torch.Tensor) -> torch.Tensor:
    """Two lists laid into one at the positions merge_positions gives."""
    out = old.new_empty((len(old) + len(new), *old.shape[1:]))
    out[at_old] = old
    out[at_new] = new
    return out


@dataclass
class CellIndex:
    """The store's entries grouped by cell: `order` lists store indices cell by cell, in ascending cell key."""

    bits: int
    order: torch.Tensor  # (N,) long: store indices, grouped by cell
    cells: torch.Tensor  # (N,) long: the cell key of each entry of `order`, ascending
    table: torch.Tensor  # (C,) long: the distinct cell keys
    starts: torch.Tensor  # (C + 1,) long: where each cell's entries begin in `order`, then N

    @classmethod
    def built(cls, keys: torch.Tensor, bits: int = CELL_BITS) -> CellIndex:
        """The index of a store holding voxel keys `keys` (N,), in any order."""
        cells, order = torch.sort(cell_keys(keys, bits))
        return cls._of(bits, order, cells)

    @classmethod
    def _of(cls, bits: int, order: torch.Tensor, cells: torch.Tensor) -> CellIndex:
        table, counts = torch.unique_consecutive(cells, return_counts=True)
        starts = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        return cls(bits, order, cells, table, starts)

    def merged(self, at_old: torch.Tensor, new_keys: torch.Tensor, at_new: torch.Tensor) -> CellIndex:
        """The index after the store merged new entries: its entry i moved to at_old[i], and the new entries, of
        voxel keys new_keys (n,), went to at_new (n,)."""
        cells, order = torch.sort(cell_keys(new_keys, self.bits))  # (n,): the few new entries, sorted alone
        at_i, at_n = merge_positions(self.cells, cells)
        return self._of(self.bits, scattered(at_old[self.order], at_i, at_new[order], at_n),
                        scattered(self.cells, at_i, cells, at_n))

    def kept(self, keep: torch.Tensor) -> CellIndex:
        """The index after the store kept its entries where `keep` (N,) bool is true, in order."""
        place = torch.cumsum(keep, 0) - 1  # (N,) each kept entry's new index
        stays = keep[self.order]
        return self._of(self.bits, place[self.order[stays]], self.cells[stays])

    def visible(self, w2c: torch.Tensor, K: torch.Tensor, height: int, width: int,
                voxel_m: float) -> torch.Tensor:
        """Store indices of the points in the cells that can be seen by a camera (w2c (4, 4), K (3, 3)) of
        `height` x `width` pixels: every point the render's view test can pass is among them.

        A cell is dropped only when its box lies beyond one side of the view (behind the camera, or left, right,
        above or below the image), that box grown by two voxels (a point's voxel is a float floor of its
        coordinates) and by a relative margin far above float32 rounding of the points' projection.
        """
        dev = self.order.device
        c = VOXEL_BITS - self.bits
        top = (1 << c) - 1
        cell = torch.stack([self.table >> 2 * c, (self.table >> c) & top, self.table & top], 1)  # (C, 3)
        lo = ((cell << self.bits) - VOXEL_OFFSET).double() * voxel_m
        hi = (((cell + 1) << self.bits) - VOXEL_OFFSET).double() * voxel_m
        R, t = w2c[:3, :3].double(), w2c[:3, 3].double()
        eye = torch.linalg.norm(R.T @ t)
        margin = 2 * voxel_m + 1e-5 * (torch.maximum(lo.abs(), hi.abs()).amax(1, keepdim=True) + eye + 1)
        centre, half = (lo + hi) / 2, (hi - lo) / 2 + margin  # (C, 3) the grown box
        # The view's sides as a . camera point >= 0 (z; u >= 0; u <= width; v >= 0; v <= height, u = K[0] . p / z,
        # v = K[1] . p / z), in world coordinates n . p + b; a box lies beyond one when that side's largest
        # value over the box (at a corner) is below zero.
        Kd = K.double()
        ez = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, device=dev)
        a = torch.stack([ez, Kd[0], width * ez - Kd[0], Kd[1], height * ez - Kd[1]])  # (5, 3)
        normal, offset = a @ R, a @ t  # (5, 3), (5,)
        out = (centre @ normal.T + half @ normal.abs().T + offset < 0).any(1)  # (C,)
        edge = ((cell == 0) | (cell == top)).any(1)  # where the voxel key clamps: points beyond the box
        seen = (~out | edge).nonzero()[:, 0]
        first, counts = self.starts[seen], self.starts[seen + 1] - self.starts[seen]
        ends = torch.cumsum(counts, 0)
        n = int(ends[-1]) if len(ends) else 0
        at = torch.repeat_interleave(first - (ends - counts), counts, output_size=n) + torch.arange(n, device=dev)
        return self.order[at]
