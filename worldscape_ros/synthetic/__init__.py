"""Synthetic worlds with ground truth, rendered offscreen with MuJoCo (no ROS imports)."""
