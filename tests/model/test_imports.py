"""The engine is torch only: importing it (in a fresh interpreter) brings no MuJoCo, no synthetic worlds, no ROS,
and not the session files that import it; no function of it imports them later either."""

import ast
import subprocess
import sys
from pathlib import Path

import worldscape_ros.model.engine as engine_module

FORBIDDEN = ('mujoco', 'worldscape_ros.synthetic', 'worldscape_ros.model.session', 'rclpy')


def forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f'{f}.') for f in FORBIDDEN)


def test_importing_the_engine_loads_no_mujoco_synthetic_worlds_ros_or_session_files():
    code = 'import sys, worldscape_ros.model.engine; print("\\n".join(sys.modules))'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert 'worldscape_ros.model.engine' in loaded
    assert [m for m in loaded if forbidden(m)] == []


def test_no_function_of_the_engine_imports_them_later():
    tree = ast.parse(Path(engine_module.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert 'worldscape_ros.model.engine' not in imported
    assert [m for m in imported if forbidden(m)] == []


def test_the_evaluation_protocol_takes_the_engines_frame_without_loading_the_engine_mujoco_or_ros():
    code = ('import sys, worldscape_ros.eval.protocol as p, worldscape_ros.model.frames as f; '
            'print(p.Frame is f.Frame); print("\\n".join(sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    same, *loaded = out.stdout.split()
    assert same == 'True'
    assert [m for m in loaded if forbidden(m) or m == 'worldscape_ros.model.engine'] == []
