import pytest
import yaml

from worldscape_ros.model.bench import run_bench, run_sessions_bench, sessions_lines, summary_line


@pytest.mark.parametrize('window', [1, 2])
def test_bench_times_every_chunk_made_stepping_or_out_of_the_rolling_window(micro_config, tmp_path, window):
    config = tmp_path / 'micro.yaml'
    config.write_text(yaml.safe_dump(micro_config.to_dict()))
    r = run_bench(str(config), chunks=10, speedup=False, window=window)
    assert r['window'] == window and r['chunks'] == 10
    assert set(r['at_chunk']) == {'1', '10'} and r['fps'] > 0
    assert r['latency_ms_p50'] > 0 and r['cache_bytes_final'] > 0
    assert f'window {window}:' in summary_line(r)


def test_bench_refuses_a_window_below_one(micro_config, tmp_path):
    with pytest.raises(ValueError, match='--window must be >= 1'):
        run_bench('ws-tiny', chunks=1, speedup=False, window=0)


def test_sessions_bench_reports_aggregate_frames_and_per_session_latency_for_each_count(micro_config, tmp_path):
    config = tmp_path / 'micro.yaml'
    config.write_text(yaml.safe_dump(micro_config.to_dict()))
    r = run_sessions_bench(str(config), [1, 3], chunks=2)
    assert [run['sessions'] for run in r['runs']] == [1, 3]
    one, three = r['runs']
    assert one['fps_over_one_session'] == 1.0 and three['fps'] == pytest.approx(3 * three['fps_per_session'])
    assert all(run['latency_ms_p50'] > 0 for run in r['runs'])
    assert '3 sessions:' in sessions_lines(r)[1] and 'x one session' in sessions_lines(r)[1]


def test_sessions_bench_refuses_a_count_below_one():
    with pytest.raises(ValueError, match='--sessions must be one or more counts >= 1'):
        run_sessions_bench('ws-tiny', [1, 0], chunks=1)


@pytest.mark.parametrize(('steps', 'reuse', 'passes'), [(2, False, 3), (1, False, 2), (1, True, 1)])
def test_bench_counts_the_dit_passes_each_frame_pays(micro_config, tmp_path, steps, reuse, passes):
    """Each denoising step is one pass; the clean pass that writes the cache is one more, unless the last step's
    pass writes it (sampler.cache_from_last_step)."""
    cfg = micro_config.replace(sampler=micro_config.sampler.__class__(steps=steps, teacher_steps=12,
                                                                      cache_from_last_step=reuse))
    config = tmp_path / 'micro.yaml'
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    r = run_bench(str(config), chunks=4, speedup=False)
    assert r['dit_passes_per_frame'] == passes
    assert r['nfe_reduction'] == pytest.approx(12 / passes)
    assert f'{12 / passes:.1f}x fewer than the teacher' in summary_line(r)


def test_bench_runs_a_checkpoint_under_the_config_given_or_its_own(micro_config, tmp_path):
    """A config given with a checkpoint changes what no tensor depends on (here: whether the last step writes the
    cache); without one the checkpoint's own config runs."""
    from worldscape_ros.model.checkpoint import save_checkpoint
    from worldscape_ros.model.world_model import WorldModel

    two_pass = micro_config.replace(sampler=micro_config.sampler.__class__(steps=1, cache_from_last_step=False))
    save_checkpoint(tmp_path / 'w.safetensors', WorldModel(two_pass))
    one_pass = tmp_path / 'one_pass.yaml'
    one_pass.write_text(yaml.safe_dump(two_pass.replace(
        sampler=two_pass.sampler.__class__(steps=1, cache_from_last_step=True)).to_dict()))
    own = run_bench(None, chunks=2, speedup=False, checkpoint=str(tmp_path / 'w.safetensors'))
    given = run_bench(str(one_pass), chunks=2, speedup=False, checkpoint=str(tmp_path / 'w.safetensors'))
    assert (own['dit_passes_per_frame'], given['dit_passes_per_frame']) == (2, 1)
