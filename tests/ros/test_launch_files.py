"""Launch files and their config, checked by structure: `launch`/`launch_ros` are on neither PyPI nor Debian.

Parsed with ast: declared arguments (each described, each used one declared), node executables (console scripts
of setup.py), params files (present in config/, every key a declared parameter with a valid value), the
Fast DDS profile exported through FASTDDS_DEFAULT_PROFILES_FILE, and includes (a launch file with the
same simulator includes sim.launch.py and gives only what differs).
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from worldscape_ros.ros.params import SimulatorParams

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = {'sim.launch.py': 'simulator.yaml', 'manipulation.launch.py': 'manipulation.yaml'}


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, 'id', getattr(n.func, 'attr', None)) == name]


def kwarg(call: ast.Call, key: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == key), None)


def const(node: ast.expr | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def console_scripts() -> set[str]:
    setup = ast.parse((REPO / 'setup.py').read_text())
    scripts = next(n for n in ast.walk(setup) if isinstance(n, ast.Constant) and n.value == 'console_scripts')
    parent = next(n for n in ast.walk(setup) if isinstance(n, ast.Dict) and scripts in n.keys)
    entries = parent.values[parent.keys.index(scripts)]
    assert isinstance(entries, ast.List)
    return {str(const(e)).split('=')[0].strip() for e in entries.elts}


def parse(name: str) -> ast.Module:
    return ast.parse((REPO / 'launch' / name).read_text(), filename=name)


def includes(tree: ast.AST) -> list[ast.Call]:
    return calls(tree, 'IncludeLaunchDescription')


def included_file(include: ast.Call) -> str:
    """The name of this package's launch file an IncludeLaunchDescription names: a Python source of
    PathJoinSubstitution([share, 'launch', NAME])."""
    source = include.args[0]
    assert isinstance(source, ast.Call) and getattr(source.func, 'id', None) == 'PythonLaunchDescriptionSource'
    path = source.args[0]
    assert isinstance(path, ast.Call) and getattr(path.func, 'id', None) == 'PathJoinSubstitution'
    assert isinstance(path.args[0], ast.List)
    parts = [const(a) for a in path.args[0].elts[1:]]
    assert parts[0] == 'launch' and len(parts) == 2, ast.unparse(path)
    return str(parts[1])


def with_includes(name: str) -> list[ast.Module]:
    """The launch file and, after it, every file it includes (recursively)."""
    tree = parse(name)
    return [tree] + [t for inc in includes(tree) for t in with_includes(included_file(inc))]


def declarations(tree: ast.AST) -> dict[str, ast.Call]:
    return {str(const(c.args[0])): c for c in calls(tree, 'DeclareLaunchArgument')}


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_launch_file_defines_generate_launch_description_and_imports_only_launch(name):
    tree = parse(name)
    assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description' for n in tree.body)
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules and all(m.split('.')[0] in ('launch', 'launch_ros') for m in modules)


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_every_argument_is_declared_with_a_description_and_every_use_is_declared(name):
    tree = parse(name)
    declared = {}
    for call in calls(tree, 'DeclareLaunchArgument'):
        arg = const(call.args[0])
        assert isinstance(arg, str)
        description = const(kwarg(call, 'description'))
        assert isinstance(description, str) and description, f'{arg} has no description'
        declared[arg] = call
    used = {const(c.args[0]) for c in calls(tree, 'LaunchConfiguration')}
    assert used <= set(declared), f'used but not declared: {used - set(declared)}'
    everywhere = {arg for t in with_includes(name) for arg in declarations(t)}
    assert {'params_file', 'fastdds_profile', 'use_sim_time', 'record'} <= everywhere


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_nodes_run_console_scripts_of_this_package(name):
    scripts = console_scripts()
    nodes = [n for tree in with_includes(name) for n in calls(tree, 'Node')]
    executables = [const(kwarg(n, 'executable')) for n in nodes]
    assert executables.count('simulator') == 1
    assert set(executables) <= scripts, f'unknown executables: {set(executables) - scripts}'
    for node in nodes:
        assert isinstance(kwarg(node, 'package'), ast.Name | ast.Constant)
        if const(kwarg(node, 'executable')) == 'simulator':
            assert const(kwarg(node, 'name')) == 'simulator'  # the params files key on /**/simulator
            assert kwarg(node, 'condition') is None
        else:
            assert kwarg(node, 'condition') is not None, 'tools are optional'
            params = kwarg(node, 'parameters')
            assert params is not None and 'use_sim_time' in ast.unparse(params)


@pytest.mark.parametrize('name, params_file', LAUNCH_FILES.items())
def test_default_params_file_and_fastdds_profile_are_shipped_files(name, params_file):
    def shipped(tree: ast.AST) -> set[str]:
        joins = [[const(a) for a in c.args[0].elts] for c in calls(tree, 'PathJoinSubstitution')
                 if isinstance(c.args[0], ast.List)]
        return {'/'.join(str(p) for p in parts[1:]) for parts in joins}

    trees = with_includes(name)
    default = kwarg(declarations(trees[0])['params_file'], 'default_value')
    assert default is not None and f"'config', '{params_file}'" in ast.unparse(default)
    files = set().union(*(shipped(t) for t in trees))
    assert 'config/fastdds.xml' in files
    for rel in files:
        assert (REPO / rel).is_file(), rel
    env = [c for t in trees for c in calls(t, 'SetEnvironmentVariable')]
    assert [const(c.args[0]) for c in env] == ['FASTDDS_DEFAULT_PROFILES_FILE']
    assert 'fastdds_profile' in ast.unparse(env[0].args[1])


def test_manipulation_includes_sim_launch_with_its_own_params_file_instead_of_copying_it():
    manip, sim = parse('manipulation.launch.py'), parse('sim.launch.py')
    (include,) = includes(manip)
    assert included_file(include) == 'sim.launch.py'
    passed = kwarg(include, 'launch_arguments')
    assert isinstance(passed, ast.Call) and isinstance(passed.func, ast.Attribute)  # {...}.items()
    assert isinstance(passed.func.value, ast.Dict)
    keys = {const(k) for k in passed.func.value.keys if k is not None}
    assert 'params_file' in keys and keys <= set(declarations(sim))
    # nothing of sim.launch.py copied: no simulator node, no environment, and the arguments both declare
    # differ only where manipulation overrides (its params file)
    assert 'simulator' not in [const(kwarg(n, 'executable')) for n in calls(manip, 'Node')]
    assert not calls(manip, 'SetEnvironmentVariable')
    ours, theirs = declarations(manip), declarations(sim)
    for arg in (set(ours) & set(theirs)) - {'params_file'}:
        assert ast.unparse(ours[arg]) == ast.unparse(theirs[arg]), f'{arg} differs from sim.launch.py'


def test_setup_installs_launch_and_config_files():
    setup = (REPO / 'setup.py').read_text()
    assert "glob('launch/*.launch.py')" in setup and "glob('config/*.xml')" in setup
    assert {'simulator', 'worldscape-sim'} <= console_scripts()


@pytest.mark.parametrize('params_file', sorted(set(LAUNCH_FILES.values())))
def test_params_files_set_every_declared_parameter_with_its_type(params_file):
    data = yaml.safe_load((REPO / 'config' / params_file).read_text())
    assert list(data) == ['/**/simulator']  # under a namespace, a bare node name is silently ignored
    values = data['/**/simulator']['ros__parameters']
    defaults = SimulatorParams()
    assert set(values) == {f.name for f in fields(SimulatorParams)}
    for key, value in values.items():
        assert type(value) is type(getattr(defaults, key)), key


def test_params_files_pass_validation_through_a_real_node():
    import rclpy

    from worldscape_ros.ros.params import declare_parameters, read_parameters

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        for params_file in sorted(set(LAUNCH_FILES.values())):
            values = yaml.safe_load((REPO / 'config' / params_file).read_text())['/**/simulator']['ros__parameters']
            node = rclpy.create_node('params_probe', context=context)
            declare_parameters(node, values)
            params = read_parameters(node)
            assert params == SimulatorParams(**values)
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_invalid_parameter_values_are_named_in_one_error():
    import rclpy

    from worldscape_ros.errors import ConfigError
    from worldscape_ros.ros.params import declare_parameters, read_parameters

    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('params_probe', context=context)
        declare_parameters(node, {'fps': 10, 'mode': 'swim', 'qos_depth': 0, 'odom_frame': ' '})
        named = r"mode='swim' must be one of navigation, manipulation; odom_frame=' ' must not be empty; qos_depth=0"
        with pytest.raises(ConfigError, match=named):
            read_parameters(node)
        node.destroy_node()
        with pytest.raises(ConfigError, match='unknown simulator parameters: nope'):
            declare_parameters(rclpy.create_node('params_probe2', context=context), {'nope': 1})
    finally:
        rclpy.shutdown(context=context)


def test_fastdds_profile_enlarges_shared_memory_and_keeps_udp():
    root = ET.parse(REPO / 'config' / 'fastdds.xml').getroot()
    ns = {'d': 'http://www.eprosima.com'}
    transports = {t.findtext('d:transport_id', namespaces=ns): t
                  for t in root.iterfind('.//d:transport_descriptor', ns)}
    types = {t.findtext('d:type', namespaces=ns) for t in transports.values()}
    assert types == {'SHM', 'UDPv4'}
    shm = next(t for t in transports.values() if t.findtext('d:type', namespaces=ns) == 'SHM')
    assert int(shm.findtext('d:segment_size', namespaces=ns)) >= 16 * 2**20
    participant = root.find('.//d:participant', ns)
    assert participant is not None and participant.get('is_default_profile') == 'true'
    used = {e.text for e in participant.iterfind('.//d:userTransports/d:transport_id', ns)}
    assert used == set(transports)
    assert participant.findtext('.//d:useBuiltinTransports', namespaces=ns) == 'false'
