"""Synthetic worlds with ground truth, rendered offscreen with MuJoCo (no ROS imports)."""

import os

# MuJoCo picks its GL backend when first imported: default to CPU offscreen rendering (osmesa).
os.environ.setdefault('MUJOCO_GL', 'osmesa')
