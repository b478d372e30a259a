import subprocess
import sys

import pytest

from worldscape_ros import __version__
from worldscape_ros.cli import main


def test_version_prints_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(['--version'])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert 'usage: worldscape' in capsys.readouterr().out


def test_unknown_command_is_one_clear_error():
    proc = subprocess.run([sys.executable, '-m', 'worldscape_ros.cli', 'no-such-command'],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert 'invalid choice' in proc.stderr
    assert 'Traceback' not in proc.stderr
