"""Evaluation: scenario suites, metrics against ground truth, baselines, benchmarks (no ROS imports)."""
