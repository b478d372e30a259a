"""WorldScape for dexterous manipulation: the simulator in manipulation mode and a source of hand keypoints.

    ros2 launch worldscape_ros manipulation.launch.py [hands:=scripted|tracker|none] [record:=true]

hands:=scripted plays keypoint scripts (reach, grasp, carry, place); hands:=tracker tracks a real hand from a
camera (needs mediapipe); hands:=none leaves hand_keypoints to you. The debug/pose_video topic shows the hand
conditioning the model receives. FASTDDS_DEFAULT_PROFILES_FILE is set as in sim.launch.py.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'worldscape_ros'


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    hands = LaunchConfiguration('hands')
    use_sim_time = LaunchConfiguration('use_sim_time')
    namespace = LaunchConfiguration('namespace')
    return LaunchDescription([
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([share, 'config', 'manipulation.yaml']),
                              description='simulator parameters (YAML with /**/simulator: keys, mode: manipulation)'),
        DeclareLaunchArgument('fastdds_profile', default_value=PathJoinSubstitution([share, 'config', 'fastdds.xml']),
                              description='Fast DDS XML profile (large shared-memory segments for images)'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the simulator and tools'),
        DeclareLaunchArgument('use_sim_time', default_value='true',
                              description='the launched tools follow /clock from the simulator'),
        DeclareLaunchArgument('hands', default_value='scripted', choices=['scripted', 'tracker', 'none'],
                              description='source of hand keypoints: scripted, tracker (a real camera) or none'),
        DeclareLaunchArgument('record', default_value='false', description='record the imagined rollout as a rosbag2'),
        DeclareLaunchArgument('log_level', default_value='info', description='log level of the simulator'),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', LaunchConfiguration('fastdds_profile')),
        Node(
            package=PACKAGE, executable='simulator', name='simulator', namespace=namespace, output='screen',
            parameters=[LaunchConfiguration('params_file')],
            arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
        ),
        Node(
            package=PACKAGE, executable='scripted_hands', name='scripted_hands', namespace=namespace,
            output='screen', parameters=[{'use_sim_time': use_sim_time}],
            condition=IfCondition(EqualsSubstitution(hands, 'scripted')),
        ),
        Node(
            package=PACKAGE, executable='hand_tracker', name='hand_tracker', namespace=namespace,
            output='screen', parameters=[{'use_sim_time': use_sim_time}],
            condition=IfCondition(EqualsSubstitution(hands, 'tracker')),
        ),
        Node(
            package=PACKAGE, executable='recorder', name='recorder', namespace=namespace, output='screen',
            parameters=[{'use_sim_time': use_sim_time}], condition=IfCondition(LaunchConfiguration('record')),
        ),
    ])
