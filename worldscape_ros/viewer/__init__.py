"""The live web viewer: the imagined camera and depth, the trajectory as camera frustums, the scene the frames
describe as a coloured point cloud, hand keypoints, and teleop buttons, served on localhost by viser.

Layout, in the order data flows:
  geometry.py  frames -> coloured points (the model's back-projection), a voxel-downsampled cloud, frustum poses
  teleop.py    what the page's buttons and sliders mean: commands, limits, the controller interface
  viewer.py    the web page (viser): one `WorldViewer` fed `FrameView`s, calling a `Controller` back
  play.py      `worldscape play`: an engine driven from the page (the controller beside the engine)
  browser.py   a headless Chromium driven through the DevTools protocol (screenshots, clicks; tests)
  ros_node.py  the ROS 2 adapter: a node feeding the viewer from the simulator's topics (the only rclpy import)
  commands.py  `worldscape play` and `worldscape view`
"""

from worldscape_ros.errors import WorldScapeError


class ViewerError(WorldScapeError):
    """The viewer cannot start or a page input is refused (bad port, bad value, no browser)."""
