import pytest

from worldscape_ros.cli import main
from worldscape_ros.errors import TrainError
from worldscape_ros.train.curves import plot_runs, read_metrics

CSV = 'step,wall_s,loss,fm,lr\n10,1.0,2.0,1.5,0.1\n20,2.0,1.0,,0.1\n30,3.0,nan,0.5,0.1\n'


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / 'teacher'
    folder.mkdir()
    (folder / 'metrics.csv').write_text(CSV)
    return folder


def test_read_metrics_keeps_finite_values_by_step(run):
    cols = read_metrics(run)
    assert cols['loss'] == [(10, 2.0), (20, 1.0)]  # nan dropped
    assert cols['fm'] == [(10, 1.5), (30, 0.5)]  # the empty cell skipped
    assert read_metrics(run / 'metrics.csv') == cols


def test_plot_draws_the_losses_not_the_bookkeeping(run, tmp_path):
    out = tmp_path / 'curves.png'
    assert plot_runs([run], out) == ['loss', 'fm']
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_unknown_column_and_missing_run_are_one_clear_error(run, tmp_path, capsys):
    with pytest.raises(TrainError, match='no run logged render'):
        plot_runs([run], tmp_path / 'x.png', ['render'])
    assert main(['plot-training', str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'x.png')]) == 2
    assert 'no metrics file' in capsys.readouterr().err
    assert not (tmp_path / 'x.png').exists()
