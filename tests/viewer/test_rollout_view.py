"""`worldscape rollout --view`: the offline rollout hands each frame to the page as it is made."""

import numpy as np

from worldscape_ros.tools.rollout import Start, offline_rollout
from worldscape_ros.tools.scripts import ActionScript
from worldscape_ros.viewer.commands import RolloutView


def test_the_rollout_shows_the_start_and_every_imagined_frame_in_order(engine, tmp_path):
    view = RolloutView(engine, port=0)
    try:
        shown = []
        draw = view.viewer.show
        view.viewer.show = lambda v: (shown.append((v.index, v.pose.copy())), draw(v))  # type: ignore[method-assign]
        script = ActionScript(actions=np.tile([0.5, 0.0, 0.0, 0.2, 0.0], (3, 1)))
        result = offline_rollout(engine, Start(kind='room', seed=1), script, tmp_path / 'run', bag=False, mp4=False,
                                 on_frame=view)
        assert result.frames == 3
        assert [i for i, _ in shown] == [0, 1, 2, 3]
        assert not np.allclose(shown[0][1], shown[-1][1])  # the page followed the camera
        assert view.viewer.stats.frames_total == 4 and (view.viewer.cloud.dirty or len(view.viewer.cloud) > 0)
    finally:
        view.viewer.close()
