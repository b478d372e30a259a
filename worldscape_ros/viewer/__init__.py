"""The live web viewer: the imagined camera and depth, the trajectory as camera frustums, the scene the frames
describe as a coloured point cloud, hand keypoints, and teleop buttons, served on localhost by viser.

Layout, in the order data flows:
  geometry.py  frames -> coloured points (the model's back-projection), a voxel-downsampled cloud, frustum poses
  teleop.py    what the page's buttons and sliders mean: commands, limits, the controller interface
  viewer.py    the web page (viser): one `WorldViewer` fed `FrameView`s, calling a `Controller` back
  play.py      `worldscape play`: an engine driven from the page (the controller beside the engine)
  browser.py   a headless Chromium driven through the DevTools protocol (screenshots, clicks; tests)
  commands.py  `worldscape play`
The ROS 2 adapter (`worldscape view`, a node feeding the page from a simulator's topics) is ros/viewer_node.py.
"""

from worldscape_ros.errors import WorldScapeError


class ViewerError(WorldScapeError):
    """The viewer cannot start or a page input is refused (bad port, bad value, no browser)."""
