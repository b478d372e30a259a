"""The surface repeats' settings (model/repeats.py), a section of the model config (config.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from worldscape_ros.errors import ConfigError


@dataclass(frozen=True)
class RepeatsConfig:
    """Surface repeats (repeats.py): the observed start frame's planes and their texture periods; a pixel the
    scene memory does not cover, on a repeating plane, takes the colour observed a period along it."""

    enabled: bool = False
    max_planes: int = 6  # planes fitted to the start frame, largest first
    min_fraction: float = 0.03  # of the frame's points a plane must hold
    plane_tol_m: float = 0.02  # a point within this of a plane lies on it
    ransac_trials: int = 256  # plane hypotheses per plane found
    period_points: int = 2000  # points of a plane that score each candidate period
    min_period_m: float = 0.5  # the candidates: min to max in steps
    max_period_m: float = 5.0
    period_step_m: float = 0.01
    min_pairs: int = 100  # a candidate period is scored only where the frame sees this many moved points
    min_pair_fraction: float = 0.1  # and this fraction of them
    # a period is kept when its mean colour difference is under this fraction of the median over all candidates
    period_score: float = 0.6
    depth_tol: float = 0.03  # relative: a place is the plane's when its depth is within this of the plane's
    behind_fraction: float = 0.02  # a plane with more of the frame's points behind it is not the room's shell
    share_periods: bool = False  # a plane without a period takes one found on planes of its orientation
    reach_px: float = 0.0  # > 0: only holes at most this far from a covered pixel are copied
    # > 0: a hole is not copied where the covered pixels beside it differ from their places a period along by
    # more than this fraction of the texture's own local variation (a wrong period or phase differs by more);
    # where the start frame sees none of their places (it saw less than a period of that plane), nothing refutes
    # the copy
    local_score: float = 0.0

    def __post_init__(self) -> None:
        for name in ('max_planes', 'ransac_trials', 'period_points', 'min_pairs'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f'repeats.{name} must be a positive int, got {value!r}')
        for name in ('min_fraction', 'plane_tol_m', 'min_period_m', 'period_step_m', 'min_pair_fraction',
                     'period_score', 'depth_tol', 'behind_fraction'):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f'repeats.{name} must be a finite number > 0, got {value!r}')
        for name in ('reach_px', 'local_score'):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f'repeats.{name} must be finite and >= 0, got {value!r}')
        if not self.max_period_m > self.min_period_m + self.period_step_m:
            raise ConfigError(f'repeats.max_period_m ({self.max_period_m}) must exceed min_period_m '
                              f'({self.min_period_m}) by more than one period_step_m')
