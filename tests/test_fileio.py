import json
import os
import stat

import pytest

from worldscape_ros.fileio import atomic_path, atomic_write_json


def test_atomic_write_replaces_the_file_whole_and_readable(tmp_path):
    p = tmp_path / 'sub' / 'report.json'
    atomic_write_json(p, {'a': 1})
    atomic_write_json(p, {'a': 2})
    assert json.loads(p.read_text()) == {'a': 2}
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
    assert [f.name for f in p.parent.iterdir()] == ['report.json']


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / 'weights.bin'
    p.write_bytes(b'old')
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_bytes(b'half')
        raise RuntimeError('killed')
    assert p.read_bytes() == b'old'
    assert [f.name for f in tmp_path.iterdir()] == ['weights.bin']
