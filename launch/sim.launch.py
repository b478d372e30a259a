"""WorldScape in place of Gazebo: the simulator node, optionally teleop and recording.

    ros2 launch worldscape_ros sim.launch.py [params_file:=...] [teleop:=true] [record:=true] [viewer:=true]

The simulator publishes /clock; the other nodes here run with use_sim_time (and so should the rest of the
stack). FASTDDS_DEFAULT_PROFILES_FILE is set to the package's Fast DDS profile, whose 16 MiB shared-memory
segments carry camera images between processes.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'worldscape_ros'


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    params_file = LaunchConfiguration('params_file')
    use_sim_time = LaunchConfiguration('use_sim_time')
    namespace = LaunchConfiguration('namespace')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=PathJoinSubstitution([share, 'config', 'simulator.yaml']),
                              description='simulator parameters (YAML with /**/simulator: keys)'),
        DeclareLaunchArgument('fastdds_profile', default_value=PathJoinSubstitution([share, 'config', 'fastdds.xml']),
                              description='Fast DDS XML profile (large shared-memory segments for images)'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the simulator and tools'),
        DeclareLaunchArgument('use_sim_time', default_value='true',
                              description='the launched tools follow /clock from the simulator'),
        DeclareLaunchArgument('teleop', default_value='false',
                              description='keyboard teleop in its own terminal (xterm) publishing cmd_vel'),
        DeclareLaunchArgument('teleop_prefix', default_value='xterm -e',
                              description='how to give keyboard teleop a terminal'),
        DeclareLaunchArgument('scripted_teleop', default_value='false',
                              description='drive a scripted tour on cmd_vel instead of the keyboard'),
        DeclareLaunchArgument('record', default_value='false', description='record the imagined rollout as a rosbag2'),
        DeclareLaunchArgument('log_level', default_value='info', description='log level of the simulator'),
        DeclareLaunchArgument('viewer', default_value='false',
                              description='the web viewer with teleop buttons (http://viewer_host:viewer_port/)'),
        DeclareLaunchArgument('viewer_host', default_value='127.0.0.1',
                              description='address the web viewer serves on (default: this machine only)'),
        DeclareLaunchArgument('viewer_port', default_value='8080', description='port of the web viewer'),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', LaunchConfiguration('fastdds_profile')),
        Node(
            package=PACKAGE, executable='simulator', name='simulator', namespace=namespace, output='screen',
            parameters=[params_file],
            arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
        ),
        Node(
            package=PACKAGE, executable='keyboard_teleop', name='keyboard_teleop', namespace=namespace,
            prefix=LaunchConfiguration('teleop_prefix'), output='screen',
            parameters=[{'use_sim_time': use_sim_time}], condition=IfCondition(LaunchConfiguration('teleop')),
        ),
        Node(
            package=PACKAGE, executable='scripted_teleop', name='scripted_teleop', namespace=namespace,
            output='screen', parameters=[{'use_sim_time': use_sim_time}],
            condition=IfCondition(LaunchConfiguration('scripted_teleop')),
        ),
        Node(
            package=PACKAGE, executable='recorder', name='recorder', namespace=namespace, output='screen',
            parameters=[{'use_sim_time': use_sim_time}], condition=IfCondition(LaunchConfiguration('record')),
        ),
        Node(
            package=PACKAGE, executable='viewer', name='viewer', namespace=namespace, output='screen',
            parameters=[{'use_sim_time': use_sim_time, 'host': LaunchConfiguration('viewer_host'),
                         'port': ParameterValue(LaunchConfiguration('viewer_port'), value_type=int)}],
            condition=IfCondition(LaunchConfiguration('viewer')),
        ),
    ])
