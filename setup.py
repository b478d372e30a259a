"""ament_python build of worldscape_ros; also installs under pip (`pip install -e .`)."""
from glob import glob

from setuptools import find_packages, setup

package_name = 'worldscape_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=['worldscape_ros', 'worldscape_ros.*']),
    package_data={'worldscape_ros': ['eval/suites/*.yaml', 'eval/scenes/*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + package_name + '/models', glob('models/*.yaml') + glob('models/*.safetensors')
         + glob('models/*.md')),
        ('share/' + package_name + '/models/train', glob('models/train/*.yaml')),
        ('share/' + package_name + '/msg', glob('msg/*.msg')),
        ('share/' + package_name + '/srv', glob('srv/*.srv')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='WorldScape developers',
    maintainer_email='dev@worldscape.invalid',
    description='A neural simulator for ROS 2 driven by a causal video world model.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'worldscape = worldscape_ros.cli:main',
            'worldscape-sim = worldscape_ros.ros.simulator_node:main',
            'simulator = worldscape_ros.ros.simulator_node:main',
            'keyboard_teleop = worldscape_ros.ros.keyboard_teleop:main',
            'hand_tracker = worldscape_ros.ros.hand_tracker:main',
            'scripted_hands = worldscape_ros.ros.scripted_hands:main',
            'scripted_teleop = worldscape_ros.ros.scripted_teleop:main',
            'recorder = worldscape_ros.ros.recorder_node:main',
            'viewer = worldscape_ros.ros.viewer_node:main',
        ],
    },
)
