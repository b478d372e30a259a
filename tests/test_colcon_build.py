"""The colcon path (README "With a real ROS 2 install"), built for real: scripts/colcon_build.sh builds ros2_ws into
a temporary folder with the colcon of the dev requirements, then a shell that sources only install/setup.bash
(no venv activation, an empty environment otherwise) must find every package, start the console scripts and
resolve the launch files' paths in the installed share directory.

Against the pip wheels (no sourced ROS 2) the launch files cannot be run (`launch`/`launch_ros` are on neither
PyPI nor Debian): what `ros2 launch` would resolve is resolved here by hand from the installed files.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from worldscape_ros.ros.params import SimulatorParams

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'worldscape_ros'
# exec_depends of package.xml that no pip wheel provides (none is on PyPI): a real ROS 2 install has them.
NOT_ON_PYPI = {'launch', 'launch_ros', 'tf2_ros'}
BUILD_TIMEOUT_S = 600

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 120)


def clean_env(**extra: str) -> dict[str, str]:
    """What a user's fresh terminal holds: no venv, no ROS, nothing inherited from pytest's interpreter (a child
    that inherits the wheels' `_ROS_WHEELS_BOOTSTRAP_COMPLETE=1` without their LD_LIBRARY_PATH cannot load rclpy)."""
    env = {'HOME': os.environ.get('HOME', '/root'), 'PATH': '/usr/local/bin:/usr/bin:/bin', 'LANG': 'C.UTF-8',
           'ROS_AUTOMATIC_DISCOVERY_RANGE': 'OFF', 'OMP_NUM_THREADS': '1', 'PYTHONDONTWRITEBYTECODE': '1'}
    env.update(extra)
    return env


@pytest.fixture(scope='module')
def install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build per test run: xdist workers share it (the first builds, under a file lock, the others wait)."""
    worker = os.environ.get('PYTEST_XDIST_WORKER')
    shared = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    base = shared / 'colcon'
    base.mkdir(exist_ok=True)
    with open(shared / 'colcon.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / 'built').is_file():
            t0 = time.perf_counter()
            proc = subprocess.run(['bash', str(REPO / 'scripts' / 'colcon_build.sh'), '--base', str(base)],
                                  env=clean_env(VENV=str(Path(sys.prefix))), cwd=base, capture_output=True,
                                  text=True, timeout=BUILD_TIMEOUT_S)
            assert proc.returncode == 0, f'colcon build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}'
            print(f'colcon build of ros2_ws: {time.perf_counter() - t0:.1f} s')
            (base / 'built').touch()
    return base / 'install'


def sourced(install: Path, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `command` in bash after `source install/setup.bash`, from a folder outside the source tree."""
    return subprocess.run(['bash', '-c', f'source {install}/setup.bash && {command}'], env=clean_env(),
                          cwd=install.parent, capture_output=True, text=True, timeout=timeout)


def console_scripts() -> list[str]:
    setup = ast.parse((REPO / 'setup.py').read_text())
    for node in ast.walk(setup):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == 'console_scripts' and isinstance(value, ast.List):
                    return [str(e.value).split('=')[0].strip() for e in value.elts if isinstance(e, ast.Constant)]
    raise AssertionError('setup.py declares no console_scripts')


def ros_exec_depends() -> list[str]:
    root = ET.parse(REPO / 'package.xml').getroot()
    return [e.text or '' for e in root.iter('exec_depend') if not (e.text or '').startswith('python3-')]


def test_colcon_builds_the_interfaces_and_the_package_but_not_the_fallback_tf2_msgs(install):
    assert (install / 'worldscape_msgs' / 'share' / 'worldscape_msgs' / 'msg' / 'HandKeypoints.msg').is_file()
    assert (install / PACKAGE / 'share' / PACKAGE / 'package.xml').is_file()
    # the fallback is for the wheels only (scripts/setup.sh): over a real ROS 2 it would shadow tf2_msgs
    assert not (install / 'tf2_msgs').exists()


def test_sourcing_install_setup_alone_finds_every_ros_dependency_and_the_installed_package(install):
    script = f'''
import json, os
from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
found, missing = {{}}, []
for name in {ros_exec_depends()!r} + ['worldscape_ros', 'worldscape_msgs', 'rosidl_default_runtime']:
    try:
        found[name] = get_package_share_directory(name)
    except PackageNotFoundError:
        missing.append(name)
import worldscape_ros, worldscape_msgs.msg, worldscape_msgs.srv, tf2_msgs.msg, rclpy
from worldscape_ros.model.config import MODELS_DIR
from worldscape_ros.tools.messages import msg_dir
print(json.dumps({{'found': found, 'missing': missing, 'package': worldscape_ros.__file__,
                   'msgs': worldscape_msgs.msg.__file__, 'models': str(MODELS_DIR), 'msg_dir': str(msg_dir()),
                   'ament_prefix_path': os.environ['AMENT_PREFIX_PATH'].split(':')}}))
'''
    proc = sourced(install, f'python -c {shlex.quote(script)}')
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(info['missing']) == NOT_ON_PYPI & set(ros_exec_depends()), info['missing']
    assert str(Path(sys.prefix)) in info['ament_prefix_path']  # the venv's wheels, chained by setup.bash
    share = install / PACKAGE / 'share' / PACKAGE
    assert info['found'][PACKAGE] == str(share)
    assert info['package'].startswith(str(install / PACKAGE))  # the installed copy, not the source tree
    assert info['msgs'].startswith(str(install / 'worldscape_msgs'))
    assert info['models'] == str(share / 'models') and info['msg_dir'] == str(share / 'msg')


def test_every_console_script_is_installed_where_ros2_run_looks_and_the_cli_starts(install):
    lib = install / PACKAGE / 'lib' / PACKAGE
    for name in console_scripts():
        assert os.access(lib / name, os.X_OK), f'{lib / name} is not an installed executable'
    proc = sourced(install, f'{lib}/worldscape --help')
    assert proc.returncode == 0 and 'import-bag' in proc.stdout and 'rollout' in proc.stdout, proc.stderr[-2000:]


def test_installed_recorder_starts_rclpy_and_rejects_a_missing_out_parameter(install):
    proc = sourced(install, f'{install}/{PACKAGE}/lib/{PACKAGE}/recorder')
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert 'parameter out' in proc.stdout + proc.stderr


def launch_share_paths(launch_file: Path) -> list[tuple[str, ...]]:
    """Each PathJoinSubstitution([FindPackageShare(...) or share, 'a', 'b']) of a launch file, as ('a', 'b')."""
    tree = ast.parse(launch_file.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'PathJoinSubstitution':
            parts = node.args[0]
            assert isinstance(parts, ast.List)
            out.append(tuple(str(e.value) for e in parts.elts[1:] if isinstance(e, ast.Constant)))
    return out


def test_launch_files_resolve_their_config_in_the_installed_share_and_run_installed_executables(install):
    share = install / PACKAGE / 'share' / PACKAGE
    launch_files = sorted((share / 'launch').glob('*.launch.py'))
    assert {p.name for p in launch_files} == {p.name for p in (REPO / 'launch').glob('*.launch.py')}
    for launch_file in launch_files:
        paths = launch_share_paths(launch_file)
        assert paths, f'{launch_file.name} resolves nothing in the share directory'
        for parts in paths:
            assert share.joinpath(*parts).is_file(), f'{launch_file.name}: {"/".join(parts)} not installed'
        tree = ast.parse(launch_file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'Node':
                exe = next(k.value.value for k in node.keywords if k.arg == 'executable'
                           and isinstance(k.value, ast.Constant))
                assert os.access(install / PACKAGE / 'lib' / PACKAGE / str(exe), os.X_OK), exe
    for params in sorted((share / 'config').glob('*.yaml')):
        assert params.read_bytes() == (REPO / 'config' / params.name).read_bytes()
        values = yaml.safe_load(params.read_text())['/**/simulator']['ros__parameters']
        SimulatorParams(**values)  # every key one the node declares (the node validates them in the start test)


def test_installed_simulator_starts_from_the_installed_params_file_and_checkpoint_and_stops_on_sigint(install):
    share = install / PACKAGE / 'share' / PACKAGE
    command = (f'exec {install}/{PACKAGE}/lib/{PACKAGE}/simulator --ros-args --params-file '
               f'{share}/config/simulator.yaml -p device:=cpu -p realtime:=false')
    env = clean_env(ROS_DOMAIN_ID=str(100 + os.getpid() % 100))
    proc = subprocess.Popen(['bash', '-c', f'source {install}/setup.bash && {command}'], env=env, cwd=install.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any('model ws-tiny' in ln for ln in lines):
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
        assert any('model ws-tiny' in ln for ln in lines), ''.join(lines)[-3000:]
        time.sleep(1.0)  # a few frames
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, ''.join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
