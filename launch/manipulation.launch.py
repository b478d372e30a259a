"""WorldScape for dexterous manipulation: sim.launch.py with the manipulation parameters, and a source of hand
keypoints.

    ros2 launch worldscape_ros manipulation.launch.py [hands:=scripted|tracker|none] [record:=true]

Every argument of sim.launch.py works here too (record, viewer, fastdds_profile, log_level, ...); params_file
defaults to config/manipulation.yaml (mode: manipulation). hands:=scripted plays keypoint scripts (reach, grasp,
carry, place); hands:=tracker tracks a real hand from a camera (needs mediapipe); hands:=none leaves
hand_keypoints to you. The debug/pose_video topic shows the hand conditioning the model receives.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EqualsSubstitution, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'worldscape_ros'


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    params_file = LaunchConfiguration('params_file')
    hands = LaunchConfiguration('hands')
    use_sim_time = LaunchConfiguration('use_sim_time')
    namespace = LaunchConfiguration('namespace')
    return LaunchDescription([
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([share, 'config', 'manipulation.yaml']),
                              description='simulator parameters (YAML with /**/simulator: keys, mode: manipulation)'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the simulator and tools'),
        DeclareLaunchArgument('use_sim_time', default_value='true',
                              description='the launched tools follow /clock from the simulator'),
        DeclareLaunchArgument('hands', default_value='scripted', choices=['scripted', 'tracker', 'none'],
                              description='source of hand keypoints: scripted, tracker (a real camera) or none'),
        # the simulator, the Fast DDS profile and the optional tools (recorder, viewer, teleop)
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([share, 'launch', 'sim.launch.py'])),
            launch_arguments={'params_file': params_file, 'namespace': namespace,
                              'use_sim_time': use_sim_time}.items(),
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
    ])
