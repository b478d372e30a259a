import json

import pytest

from worldscape_ros.cli import main
from worldscape_ros.eval import runner

SUITE = """
name: tiny
kind: nav
width: 64
height: 48
frames: 8
seeds: [90001]
scripts: [straight, out_and_back]
"""
BASELINES = 'repeat_first_frame,reprojection,reprojection_inpaint'


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('eval')
    suite = root / 'tiny.yaml'
    suite.write_text(SUITE)
    out = root / 'out'
    rc = main(['eval', '--suite', str(suite), '--out', str(out), '--systems', BASELINES, '--no-progress'])
    assert rc == 0
    return suite, out


def test_eval_writes_report_json_with_every_system_metric_and_provenance(tiny_run):
    _, out = tiny_run
    report = json.loads((out / 'report.json').read_text())
    assert list(report['results']) == ['repeat_first_frame', 'reprojection', 'reprojection_inpaint']
    for system in report['results'].values():
        for metric in ('psnr', 'psnr_f1_4', 'psnr_f1_16', 'ssim', 'structure', 'gmsd', 'depth_absrel',
                       'rot_err_deg', 'memory_symmetry', 'return_psnr', 'seen_psnr', 'revealed_fraction',
                       'revealed_noise_flag'):
            assert metric in system
    assert report['reference']['ground_truth']['psnr'] == 100.0
    assert report['seeds'] == [90001] and report['device'] == 'cpu' and report['date']
    assert report['ground_truth_gl'] == 'osmesa'  # what `make test` renders with
    assert set(report['scenarios']) == {'tiny/straight_90001', 'tiny/out_and_back_90001'}
    assert len(report['curves']['tiny']['reprojection']['psnr']) == 8
    assert 'fid' in report['skipped_metrics'] and 'fvd' in report['skipped_metrics']
    # reprojection beats the frozen frame early on; the frozen frame recovers no motion
    res = report['results']
    assert res['reprojection']['psnr_f1_4'] > res['repeat_first_frame']['psnr_f1_4']
    assert res['repeat_first_frame']['motion_recovered'] == 0.0


def test_eval_writes_table_plots_contact_sheets_and_videos(tiny_run):
    _, out = tiny_run
    md = (out / 'report.md').read_text()
    assert '| PSNR dB | higher |' in md and 'gradient energy / GT' in md and 'Skipped metrics' in md
    assert (out / 'plots' / 'tiny_psnr.png').stat().st_size > 1000
    assert (out / 'plots' / 'tiny_structure.png').is_file()
    assert (out / 'media' / 'tiny' / 'straight_90001_sheet.png').is_file()
    assert (out / 'media' / 'tiny' / 'out_and_back_90001.mp4').stat().st_size > 0


def test_rerun_skips_finished_scenarios_and_recomputes_when_settings_change(tiny_run, monkeypatch):
    suite, out = tiny_run

    def no_render(scenario):
        raise AssertionError(f'{scenario.key} was recomputed')

    monkeypatch.setattr(runner, 'ground_truth', no_render)
    assert main(['eval', '--suite', str(suite), '--out', str(out), '--systems', BASELINES, '--no-progress',
                 '--no-media']) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['resumed_scenarios'] == 2
    with pytest.raises(AssertionError, match='was recomputed'):
        main(['eval', '--suite', str(suite), '--out', str(out), '--systems', BASELINES, '--no-progress',
              '--frames', '5'])
    with pytest.raises(AssertionError, match='was recomputed'):  # an ablation is another system
        main(['eval', '--suite', str(suite), '--out', str(out), '--systems', BASELINES, '--no-progress',
              '--ablate', 'geometry'])
    # another GL backend draws another ground truth: the figures would not compare
    monkeypatch.setenv('MUJOCO_GL', 'egl')
    with pytest.raises(AssertionError, match='was recomputed'):
        main(['eval', '--suite', str(suite), '--out', str(out), '--systems', BASELINES, '--no-progress',
              '--no-media'])


def test_report_only_rebuilds_from_finished_scenarios_and_leaves_missing_ones_out(tiny_run, tmp_path, monkeypatch):
    suite, out = tiny_run
    bigger = tmp_path / 'bigger.yaml'
    bigger.write_text(suite.read_text().replace('[straight, out_and_back]', '[straight, out_and_back, strafe]'))
    monkeypatch.setattr(runner, 'ground_truth', lambda scenario: (_ for _ in ()).throw(AssertionError('ran')))
    assert main(['eval', '--suite', str(bigger), '--out', str(out), '--systems', BASELINES, '--no-progress',
                 '--report-only']) == 0
    report = json.loads((out / 'report.json').read_text())
    assert set(report['scenarios']) == {'tiny/straight_90001', 'tiny/out_and_back_90001'}


def test_eval_rejects_unknown_systems_and_suites(tmp_path, capsys):
    assert main(['eval', '--suite', 'nav', '--out', str(tmp_path), '--systems', 'oracle']) == 2
    assert 'unknown systems oracle' in capsys.readouterr().err
    assert main(['eval', '--suite', 'everything', '--out', str(tmp_path)]) == 2
    assert 'unknown suite' in capsys.readouterr().err
    assert main(['eval', '--suite', 'nav', '--out', str(tmp_path), '--pretrained-metrics', str(tmp_path / 'x')]) == 2
    assert 'is not a folder' in capsys.readouterr().err


def test_eval_writes_the_inpainting_baseline_and_the_seen_and_revealed_rows(tiny_run):
    _, out = tiny_run
    md = (out / 'report.md').read_text()
    assert '| metric | better | repeat_first_frame | reprojection | reprojection_inpaint | ground_truth |' in md
    assert '| PSNR frames 1-16 dB | higher |' in md and '| PSNR on pixels the start frame sees dB |' in md


def test_rgb_only_eval_warps_by_the_model_predicted_start_depth_and_scores_it(tmp_path):
    suite = tmp_path / 'tiny.yaml'
    suite.write_text(SUITE.replace('[straight, out_and_back]', '[straight]').replace('frames: 8', 'frames: 3'))
    out = tmp_path / 'out'
    assert main(['eval', '--suite', str(suite), '--out', str(out), '--systems', 'reprojection_inpaint',
                 '--rgb-only', '--checkpoint', 'random', '--config', 'ws-tiny', '--no-progress', '--no-media',
                 '--threads', '1']) == 0
    report = json.loads((out / 'report.json').read_text())
    figures = report['results']['reprojection_inpaint']
    assert report['rgb_only'] is True and figures['start_depth_absrel'] > 0
    assert report['reference']['ground_truth']['start_depth_absrel'] == 0.0
    assert 'start depth AbsRel' in (out / 'report.md').read_text()


def test_the_model_systems_identify_the_run_and_an_rgb_only_start_reuses_the_models_engine(monkeypatch):
    import argparse

    from worldscape_ros.eval import baselines, commands

    loaded = []

    def counted(*args, **kwargs):
        loaded.append(kwargs)
        return baselines.model_system(*args, **kwargs)

    monkeypatch.setattr(commands, 'model_system', counted)
    args = argparse.Namespace(checkpoint='random', config='ws-tiny', device='cpu', dtype='float32', ablate=None,
                              window=2, rgb_only=True)
    systems, info = commands.build_systems(['model', 'memory_off', 'reprojection'], args)
    assert list(systems) == ['model', 'memory_off', 'reprojection']
    assert [k['memory'] for k in loaded] == [True, False]  # the start depth comes from the 'model' engine
    assert info['checkpoint_sha256'] == 'random-init' and info['config'] == 'ws-tiny' and info['window'] == 2
    assert info['model_size'] == [128, 96, 10.0]
