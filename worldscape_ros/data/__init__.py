"""Episode format on disk, readers for public formats, and training datasets (no ROS imports)."""
