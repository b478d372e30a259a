"""WorldScape ROS: a neural simulator for ROS 2 driven by a causal video world model."""

__version__ = '0.1.0'
