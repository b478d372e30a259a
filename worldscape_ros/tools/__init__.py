"""Offline tools around the engine: rosbag2 writing and reading, rollouts without ROS, videos and contact sheets.

Nothing here imports rclpy: messages are built and serialised with the pure-Python `rosbags` library, so an
offline rollout runs on a machine with only torch. The ROS nodes (worldscape_ros.ros) build on this package
(the bag writer, the message fields, the hand plans), never the reverse.
"""
