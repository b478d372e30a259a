import json

import pytest

from worldscape_ros.cli import main
from worldscape_ros.data.episode import read_episode
from worldscape_ros.errors import DatagenError
from worldscape_ros.synthetic.datagen import DatagenConfig, parse_size, run_datagen


def _config(tmp_path, **kw):
    args = dict(kind='nav', episodes=2, frames=3, width=32, height=24, seed=1, out=tmp_path / 'out')
    args.update(kw)
    return DatagenConfig(**args)


def test_datagen_writes_episodes_and_resumes_without_redoing_them(tmp_path):
    config = _config(tmp_path)
    first = run_datagen(config, progress=False)
    assert first['generated'] == 2 and first['frames'] == 6
    files = sorted(config.out.glob('*.episode.npz'))
    assert [f.name for f in files] == ['nav_000000.episode.npz', 'nav_000001.episode.npz']
    mtimes = [f.stat().st_mtime_ns for f in files]
    files[1].write_bytes(files[1].read_bytes()[:100])  # a damaged episode is made again
    (config.out / '.nav_000002.episode.npz.abc.tmp').write_bytes(b'half')  # a killed run's temp file goes
    again = run_datagen(_config(tmp_path, episodes=3), progress=False)
    assert again['skipped'] == 1 and again['generated'] == 2
    assert files[0].stat().st_mtime_ns == mtimes[0]
    ep = read_episode(files[1])
    assert ep.rgb.shape == (3, 24, 32, 3) and ep.meta['datagen_index'] == 1
    assert not list(config.out.glob('*.tmp'))


def test_resuming_with_other_settings_is_refused(tmp_path):
    run_datagen(_config(tmp_path, episodes=1), progress=False)
    with pytest.raises(DatagenError, match='other settings'):
        run_datagen(_config(tmp_path, episodes=1, frames=4), progress=False)


def test_furnished_worlds_give_furnished_rooms_and_keep_procedural_manifests_as_they_were(tmp_path):
    from worldscape_ros.synthetic.datagen import episode_plan

    furnished = _config(tmp_path, worlds='furnished', episodes=6)
    assert {episode_plan(furnished, i).scene_kind for i in range(6)} == {'furnished'}
    procedural = _config(tmp_path, episodes=40)
    assert {episode_plan(procedural, i).scene_kind for i in range(40)} == {'room', 'yard'}
    # the same episode draws the same scene seed and family in either world
    assert [episode_plan(furnished, i).script for i in range(6)] == [episode_plan(procedural, i).script
                                                                      for i in range(6)]
    assert 'worlds' not in procedural.settings() and furnished.settings()['worlds'] == 'furnished'
    run_datagen(_config(tmp_path, worlds='furnished', episodes=1), progress=False)
    assert read_episode(tmp_path / 'out' / 'nav_000000.episode.npz').meta['scene_kind'] == 'furnished'


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(DatagenError, match="unknown kind 'fly'"):
        _config(tmp_path, kind='fly')
    with pytest.raises(DatagenError, match="unknown worlds 'moon'"):
        _config(tmp_path, worlds='moon')
    with pytest.raises(DatagenError, match='--worlds furnished is for nav episodes'):
        _config(tmp_path, kind='manip', worlds='furnished')
    with pytest.raises(DatagenError, match='--episodes must be a positive integer'):
        _config(tmp_path, episodes=0)
    with pytest.raises(DatagenError, match='--size must look like WIDTHxHEIGHT'):
        parse_size('big')
    with pytest.raises(DatagenError, match='--size must be positive'):
        parse_size('0x10')
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    with pytest.raises(DatagenError, match='cannot write to output folder'):
        run_datagen(_config(tmp_path, out=blocker / 'sub'), progress=False)


def test_cli_datagen_and_contact_sheet(tmp_path, capsys):
    out = tmp_path / 'eps'
    assert main(['datagen', '--kind', 'manip', '--episodes', '1', '--frames', '3', '--size', '48x36',
                 '--out', str(out), '--no-progress']) == 0
    assert json.loads((out / 'datagen.json').read_text())['kind'] == 'manip'
    sheet = tmp_path / 'sheet.png'
    assert main(['contact-sheet', '--episodes', str(out), '--out', str(sheet), '--count', '1']) == 0
    assert sheet.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert main(['datagen', '--kind', 'cooking', '--episodes', '1', '--out', str(out)]) == 2
    assert "unknown kind 'cooking'" in capsys.readouterr().err
    assert main(['contact-sheet', '--episodes', str(tmp_path / 'none'), '--out', str(sheet)]) == 2


def test_a_full_disk_is_one_clear_error_and_leaves_no_episode(tmp_path, monkeypatch):
    import errno

    import worldscape_ros.synthetic.datagen as datagen

    def full(path, episode):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(datagen, 'write_episode', full)
    config = _config(tmp_path, episodes=1)
    with pytest.raises(DatagenError, match='output disk is full while writing .*nav_000000.episode.npz'):
        run_datagen(config, progress=False)
    assert not list(config.out.glob('*.episode.npz'))
