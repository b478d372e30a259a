"""ROS 2 nodes, message conversions and launch helpers (the only part that imports rclpy)."""
