"""`worldscape view`: the web viewer as a ROS 2 node beside a running simulator, like rviz (rclpy loads only when
the command runs)."""

from __future__ import annotations

import argparse

from worldscape_ros.viewer.commands import add_server_arguments, page_limits


def register(subparsers: argparse._SubParsersAction) -> None:
    v = subparsers.add_parser(
        'view', help='the web viewer beside a running ROS 2 simulator (subscribes to its topics, drives cmd_vel)',
        description='A ROS 2 node that subscribes to the simulator\'s camera, depth, camera_info, odom and TF '
        'topics and serves the page (http://HOST:PORT/); its buttons publish cmd_vel and call the simulator\'s '
        'pause/resume/step/reset services. Same as `ros2 run worldscape_ros viewer`.')
    add_server_arguments(v)
    v.add_argument('--namespace', default='', help='namespace of the simulator\'s topics')
    v.add_argument('--simulator', default='simulator', help='the simulator node\'s name (its services: NAME/...)')
    v.set_defaults(func=run_view)


def run_view(args: argparse.Namespace) -> int:
    from worldscape_ros.ros.viewer_node import run_viewer_node

    return run_viewer_node(host=args.host, port=args.port, limits=page_limits(args), namespace=args.namespace,
                           simulator=args.simulator)
