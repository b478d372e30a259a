"""The frame of a companion node's `main` (teleop, hands, tracker, recorder): rclpy initialised for one node, its
parameters declared with descriptions from a typed dataclass, a refused start logged with exit code 2, and the
node and rclpy shut down however main ends.

rclpy is imported inside the functions, so a node module's ROS-free parts import without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

P = TypeVar('P', bound='DataclassInstance')  # a node's parameters dataclass

EXIT_REFUSED = 2  # a bad parameter, input or missing dependency: logged, nothing run
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it


@contextmanager
def companion_node(name: str, argv: list[str] | None, rclpy_signals: bool = True) -> Iterator[Node]:
    """rclpy initialised with `argv` and a node called `name`; both shut down on leaving, also after errors.

    `rclpy_signals=False` leaves SIGINT and SIGTERM to the caller's own handlers (rclpy installs none).
    """
    import rclpy
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    options = SignalHandlerOptions.ALL if rclpy_signals else SignalHandlerOptions.NO
    rclpy.init(args=argv, signal_handler_options=options)
    node = Node(name)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


@contextmanager
def node_executor(node: Node) -> Iterator[SingleThreadedExecutor]:
    """A single-threaded executor spinning `node`, shut down on leaving."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        yield executor
    finally:
        executor.shutdown()


def declare(node: Node, name: str, value: Any, description: str) -> Any:
    """Declare a parameter with its description; its value (the default unless overridden).

    The default's type is the parameter's: rclpy refuses an override of another type."""
    from rcl_interfaces.msg import ParameterDescriptor

    return node.declare_parameter(name, value, ParameterDescriptor(description=description)).value


def described(default: Any, description: str) -> Any:
    """A field of a node's parameters dataclass: the parameter's default and what `ros2 param describe` says."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={'description': description})
    return field(default=default, metadata={'description': description})


def declare_params(node: Node, params_type: type[P]) -> P:
    """Each field of the dataclass `params_type` declared as a parameter, in field order; their values."""
    values = {}
    for f in fields(params_type):
        default = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
        values[f.name] = declare(node, f.name, default, f.metadata['description'])
    return params_type(**values)


def refuse(node: Node, error: Exception) -> int:
    """Log why the node cannot run; the exit code that says so."""
    node.get_logger().error(str(error))
    return EXIT_REFUSED


def spin_until_interrupted(node: Node, *done: type[BaseException]) -> None:
    """Spin `node` until Ctrl-C, or until a callback raises one of `done` (e.g. SystemExit when its work ends).

    Ctrl-C reaches a spinning node either as KeyboardInterrupt or, when rclpy's signal handler shut the context
    down first, as ExternalShutdownException: both are the end asked for."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    ends: tuple[type[BaseException], ...] = (KeyboardInterrupt, ExternalShutdownException, *done)
    try:
        rclpy.spin(node)
    except ends:
        pass
