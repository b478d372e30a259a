"""Training: codec, bidirectional teacher, causal distillation (no ROS imports)."""
