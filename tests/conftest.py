"""Test isolation: offscreen GL for MuJoCo, ROS traffic kept on this host, one DDS domain per xdist worker."""

import os

os.environ.setdefault('MUJOCO_GL', 'osmesa')
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
_worker = os.environ.get('PYTEST_XDIST_WORKER', 'gw0')
os.environ.setdefault('ROS_DOMAIN_ID', str(40 + int(''.join(c for c in _worker if c.isdigit()) or 0)))
os.environ.setdefault('OMP_NUM_THREADS', '1')
