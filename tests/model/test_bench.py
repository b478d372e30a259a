import pytest
import yaml

from worldscape_ros.model.bench import run_bench, summary_line


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
