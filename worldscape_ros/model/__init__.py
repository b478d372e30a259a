"""The causal world model (torch + einops only, no ROS imports)."""
