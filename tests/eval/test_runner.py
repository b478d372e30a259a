import math

import cv2
import numpy as np
import pytest

from worldscape_ros.eval.baselines import RepeatFirstFrame, Reprojection
from worldscape_ros.eval.runner import REFERENCE, load_json, roll_out, run_scenario, scenario_path, score
from worldscape_ros.eval.suites import parse_suite


def _suite(kind: str, scripts: list[str], frames: int = 8, **extra):
    return parse_suite({'name': f'{kind}_test', 'kind': kind, 'width': 64, 'height': 48, 'frames': frames,
                        'seeds': [90031], 'scripts': scripts, **extra})


def test_manipulation_scenario_scores_hand_iou_high_on_truth_and_low_on_a_frozen_frame(tmp_path):
    scenario = _suite('manip', ['reach'], frames=10).scenarios[0]
    result = run_scenario(scenario, {'repeat_first_frame': RepeatFirstFrame()}, tmp_path, {'v': 1})
    truth = result['reference'][REFERENCE]['summary']['hand_iou']
    frozen = result['systems']['repeat_first_frame']['summary']['hand_iou']
    assert truth > 0.3
    assert frozen is None or math.isnan(frozen) or frozen < 0.1
    assert 'rot_err_deg' not in result['systems']['repeat_first_frame']['summary']  # the camera does not move


def test_scenario_json_is_written_last_and_complete(tmp_path):
    scenario = _suite('nav', ['turn_left'], frames=5).scenarios[0]
    run_scenario(scenario, {'reprojection': Reprojection()}, tmp_path, {'v': 1})
    saved = load_json(scenario_path(tmp_path, scenario))
    assert saved is not None and saved['fingerprint'] == {'v': 1}
    curves = saved['systems']['reprojection']['per_frame']
    assert curves['psnr'][0] is None and len(curves['psnr']) == 5  # frame 0 is the given start
    assert math.isnan(curves['trans_err_deg'][3] if curves['trans_err_deg'][3] is not None else math.nan)
    assert not list(tmp_path.rglob('*.tmp'))


def test_image_start_scenario_scores_action_following_without_ground_truth_frames(tmp_path, turning_walk):
    cv2.imwrite(str(tmp_path / 'start.png'), cv2.cvtColor(turning_walk['rgb'][0], cv2.COLOR_RGB2BGR))
    np.save(tmp_path / 'start_depth.npy', turning_walk['depth'][0])
    suite = parse_suite({'name': 'mine', 'kind': 'nav', 'frames': 6, 'scenarios': [
        {'script': 'turn_left', 'start': {'image': 'start.png', 'depth': 'start_depth.npy',
                                          'pose': turning_walk['poses'][0].ravel().tolist(),
                                          'intrinsics': turning_walk['K'].ravel().tolist()}}]}, base_dir=tmp_path)
    result = run_scenario(suite.scenarios[0], {'reprojection': Reprojection()}, tmp_path, {'v': 1})
    summary = result['systems']['reprojection']['summary']
    assert 'psnr' not in summary and result['reference'] == {}
    assert summary['rot_err_deg'] < 2.0  # reprojection turns as commanded


def test_idle_scenario_scores_drift_and_skips_action_following(turning_walk):
    scenario = _suite('nav', ['idle'], frames=4).scenarios[0]
    from worldscape_ros.eval.ground_truth import GroundTruth

    gt = GroundTruth(rgb=np.repeat(turning_walk['rgb'][:1], 4, 0), depth=np.repeat(turning_walk['depth'][:1], 4, 0),
                     poses=np.repeat(turning_walk['poses'][:1], 4, 0), intrinsics=turning_walk['K'],
                     actions=np.zeros((4, 5), np.float32))
    rollout = roll_out(RepeatFirstFrame(), gt, scenario)
    result = score(scenario, gt, rollout)
    assert result['summary']['idle_ssim'] == pytest.approx(1.0, abs=1e-5)
    assert 'rot_err_deg' not in result['summary']  # idle: no motion to follow


@pytest.mark.slow
def test_model_with_memory_off_runs_a_scenario_through_the_protocol(tmp_path):
    pytest.importorskip('worldscape_ros.model.engine')
    from worldscape_ros.eval.baselines import model_system

    system = model_system('random', 'ws-tiny', memory=False)
    scenario = parse_suite({'name': 'm', 'kind': 'nav', 'frames': 3, 'seeds': [90001],
                            'scripts': ['straight']}).scenarios[0]  # ws-tiny's own 128x96 at 10 fps
    result = run_scenario(scenario, {'memory_off': system}, tmp_path, {'v': 1})
    summary = result['systems']['memory_off']['summary']
    assert math.isfinite(summary['psnr']) and math.isfinite(summary['structure'])
    assert summary['latency_ms'] > 0


def test_a_model_with_a_rolling_window_rolls_the_known_trajectory_through_it():
    """window 2: the scenario goes through engine.rollout (chunks refined together), so its frames are those of
    rollout() and differ from stepping one chunk at a time."""
    pytest.importorskip('worldscape_ros.model.engine')
    from worldscape_ros.eval.baselines import model_system
    from worldscape_ros.eval.ground_truth import drive_command, ground_truth

    scenario = parse_suite({'name': 'w', 'kind': 'nav', 'frames': 4, 'seeds': [90001],
                            'scripts': ['turn_left']}).scenarios[0]
    gt = ground_truth(scenario)
    rolled = {w: roll_out(model_system(window=w), gt, scenario) for w in (1, 2)}  # the shipped model
    direct = model_system(window=2)
    direct.reset(gt.rgb[0], gt.poses[0], gt.intrinsics, gt.depth[0])
    commands = [drive_command(gt, t, scenario.kind) for t in range(1, gt.frames)]
    frames = direct.rollout(commands)  # type: ignore[attr-defined]
    assert np.array_equal(rolled[2].rgb[1:], np.stack([f.rgb for f in frames]))
    assert not np.array_equal(rolled[1].rgb[1:], rolled[2].rgb[1:])
    assert rolled[2].latency_ms.shape == (gt.frames - 1,)
