import math

import cv2
import numpy as np
import pytest
import yaml

from worldscape_ros.eval.baselines import RepeatFirstFrame, Reprojection, ReprojectionInpaint
from worldscape_ros.eval.runner import REFERENCE, Rollout, load_json, roll_out, run_scenario, scenario_path, score
from worldscape_ros.eval.suites import parse_suite
from worldscape_ros.model.kinematics import NavAction


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
    from worldscape_ros.eval.baselines import model_system

    system = model_system('random', 'ws-tiny', memory=False)
    scenario = parse_suite({'name': 'm', 'kind': 'nav', 'frames': 3, 'seeds': [90001],
                            'scripts': ['straight']}).scenarios[0]  # ws-tiny's own 128x96 at 10 fps
    result = run_scenario(scenario, {'memory_off': system}, tmp_path, {'v': 1})
    summary = result['systems']['memory_off']['summary']
    assert math.isfinite(summary['psnr']) and math.isfinite(summary['structure'])
    assert summary['latency_ms'] > 0


def test_a_model_with_a_rolling_window_rolls_the_known_trajectory_through_it(tmp_path):
    """window 2: the scenario goes through engine.rollout (chunks refined together), so its frames are those of
    rollout() and differ from stepping one chunk at a time. Two denoising steps: with one, every chunk of the
    window is at the same noise level and the window changes nothing."""
    from worldscape_ros.eval.baselines import model_system
    from worldscape_ros.eval.ground_truth import drive_command, ground_truth
    from worldscape_ros.model.config import load_config

    d = load_config('ws-tiny').to_dict()
    config = tmp_path / 'two_steps.yaml'
    config.write_text(yaml.safe_dump({**d, 'sampler': {**d['sampler'], 'steps': 2}}))
    scenario = parse_suite({'name': 'w', 'kind': 'nav', 'frames': 4, 'seeds': [90001],
                            'scripts': ['turn_left']}).scenarios[0]
    gt = ground_truth(scenario)
    rolled = {w: roll_out(model_system(config=str(config), window=w), gt, scenario) for w in (1, 2)}  # shipped
    direct = model_system(config=str(config), window=2)
    direct.reset(gt.rgb[0], gt.poses[0], gt.intrinsics, gt.depth[0])
    commands = [drive_command(gt, t, scenario.kind) for t in range(1, gt.frames)]
    frames = direct.rollout(commands)  # type: ignore[attr-defined]
    assert np.array_equal(rolled[2].rgb[1:], np.stack([f.rgb for f in frames]))
    assert not np.array_equal(rolled[1].rgb[1:], rolled[2].rgb[1:])
    assert rolled[2].latency_ms.shape == (gt.frames - 1,)


def _room_truth(walk: dict, action: NavAction, frames: int | None = None):
    """The conftest room's walk as a scenario's ground truth, driven by the one action it was rendered with."""
    from worldscape_ros.eval.ground_truth import GroundTruth

    n = frames or len(walk['rgb'])
    actions = np.zeros((n, 5), np.float32)
    actions[1:] = action.to_array()
    return GroundTruth(rgb=walk['rgb'][:n], depth=walk['depth'][:n], poses=walk['poses'][:n], intrinsics=walk['K'],
                       actions=actions)


WALK = NavAction(vx=0.6, yaw_rate=math.radians(20))  # conftest's turning_walk
SPIN = NavAction(yaw_rate=math.radians(45))


def test_nav_scores_report_seen_and_revealed_pixels_apart_and_the_frames_1_to_16(turning_walk):
    scenario = _suite('nav', ['turn_left'], frames=12).scenarios[0]
    gt = _room_truth(turning_walk, WALK)
    summary = {name: score(scenario, gt, roll_out(system, gt, scenario))['summary']
               for name, system in (('frozen', RepeatFirstFrame()), ('holes', Reprojection()),
                                    ('inpaint', ReprojectionInpaint()))}
    truth = score(scenario, gt, Rollout(gt.rgb, gt.depth, gt.poses, np.zeros(0)))['summary']
    assert truth['seen_psnr'] == truth['revealed_psnr'] == 100.0 and truth['revealed_noise_flag'] == 0.0
    for s in summary.values():
        assert s['psnr_f1_16'] == pytest.approx(s['psnr'])  # 11 generated frames: all within 1-16
    assert summary['inpaint']['seen_psnr'] == pytest.approx(summary['holes']['seen_psnr'], abs=0.5)
    assert summary['inpaint']['revealed_psnr'] > summary['holes']['revealed_psnr'] + 3
    assert summary['holes']['seen_psnr'] > summary['frozen']['seen_psnr'] + 5
    assert summary['holes']['revealed_fraction'] == truth['revealed_fraction'] > 0.05


def test_revisit_figures_appear_for_a_turn_that_comes_round_again(render_walk):
    walk = render_walk([SPIN] * 95)
    scenario = _suite('nav', ['turn_left'], frames=96).scenarios[0]
    gt = _room_truth(walk, SPIN)
    frozen = score(scenario, gt, roll_out(RepeatFirstFrame(), gt, scenario))['summary']
    truth = score(scenario, gt, Rollout(gt.rgb, gt.depth, gt.poses, np.zeros(0)))['summary']
    assert truth['unseen_pairs'] == frozen['unseen_pairs'] > 5
    assert truth['return_unseen_psnr'] == 100.0 and truth['revisit_ssim'] == pytest.approx(1.0, abs=1e-6)
    assert frozen['revisit_psnr'] == 100.0 and frozen['return_unseen_psnr'] < 20


def test_an_rgb_only_start_withholds_the_depth_and_scores_the_start_depth_the_system_made(turning_walk):
    scenario = _suite('nav', ['turn_left'], frames=6).scenarios[0]
    gt = _room_truth(turning_walk, WALK, 6)
    given = []

    def predicted(rgb, pose, K):
        given.append(True)
        return gt.depth[0] * 1.1

    rollout = roll_out(ReprojectionInpaint(start_depth=predicted), gt, scenario, rgb_only=True)
    assert given and np.allclose(rollout.depth[0], gt.depth[0] * 1.1)
    summary = score(scenario, gt, rollout)['summary']
    assert summary['start_depth_absrel'] == pytest.approx(0.1, abs=1e-4)
    assert summary['start_depth_delta1'] == 1.0
    with pytest.raises(ValueError, match="needs the start frame's depth"):
        roll_out(Reprojection(), gt, scenario, rgb_only=True)
    truth_given = score(scenario, gt, roll_out(ReprojectionInpaint(), gt, scenario))['summary']
    assert 'start_depth_absrel' not in truth_given  # a given start depth is not scored


def test_manipulation_scenario_scores_the_object_and_the_static_table(tmp_path):
    scenario = _suite('manip', ['carry'], frames=10).scenarios[0]
    result = run_scenario(scenario, {'repeat_first_frame': RepeatFirstFrame()}, tmp_path, {'v': 1})
    truth = result['reference'][REFERENCE]['summary']
    frozen = result['systems']['repeat_first_frame']['summary']
    assert truth['object_error_px'] < 2.0 and frozen['object_error_px'] > 3 * truth['object_error_px']
    assert frozen['static_change'] == 0.0 and truth['static_change'] < 1.0
    assert len(result['systems']['repeat_first_frame']['per_frame']['object_error_px']) == 10
