"""rosbag2 recordings with the pure-Python `rosbags` library (no rclpy, no rosbag2 install needed).

Storage: mcap with metadata version 9 (Jazzy, Kilted; the default) or sqlite3 with version 8 (Humble, Iron, which
cannot read version 9 QoS lists). Each topic records the QoS it was offered with (transient-local for
/tf_static so a player re-latches it). Custom types (worldscape_msgs) are registered from the msg/ text, so the
bag carries their definitions and the same RIHS01 hashes rclpy uses.

The bag is written into a hidden folder beside its destination (`.NAME.XXXX.partial`) and moved into place when
it is closed: a bag at `path` is always complete. Closing happens on normal exit, on exceptions and on Ctrl-C
(KeyboardInterrupt, and SIGTERM through `stop_on_signals`, which never cuts a write in half), so an interrupted
recording stays readable.

A process that cannot close (SIGKILL, a power cut) leaves the `.partial` folder with an mcap that has no footer,
index or metadata.yaml. The writer bounds what such a kill loses: mcap chunks are closed at CHUNK_BYTES and at
least every FLUSH_PERIOD_S seconds and handed to the operating system at once (fsynced every SYNC_PERIOD_S), so
at most the open chunk is lost. `recover_bag` (`worldscape bag-recover PATH`) streams the records of the flushed
chunks back (with the `mcap` package, which reads an unfinalised file) into a complete rosbag2.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from rosbags.highlevel import AnyReader
from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

from worldscape_ros.errors import WorldScapeError
from worldscape_ros.tools.messages import typestore

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20  # an mcap chunk is closed and written once it holds this much
FLUSH_PERIOD_S = 1.0  # ... or once its oldest message is this old
SYNC_PERIOD_S = 5.0  # written chunks reach the disk (fsync) at least this often: a power cut loses no more


class BagError(WorldScapeError):
    """A bag cannot be written where asked, or a killed recording cannot be recovered."""

# storage name -> (rosbags plugin, rosbag2 metadata version)
STORAGES: dict[str, tuple[StoragePlugin, Literal[8, 9]]] = {'mcap': (StoragePlugin.MCAP, 9),
                                                           'sqlite3': (StoragePlugin.SQLITE3, 8)}

_DEFAULT_TIME = QosTime(0, 0)  # "unset": infinite deadline/lifespan/lease, as rclpy's default profiles


def qos(depth: int = 10, reliable: bool = True, transient_local: bool = False) -> Qos:
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE, _DEFAULT_TIME,
               _DEFAULT_TIME, QosLiveliness.AUTOMATIC, _DEFAULT_TIME, False)


QOS_RELIABLE = qos()
QOS_SENSOR = qos(depth=5, reliable=False)  # rclpy's qos_profile_sensor_data
QOS_LATCHED = qos(depth=1, transient_local=True)  # /tf_static, as tf2's StaticTransformBroadcaster offers it


@dataclass(frozen=True)
class TopicSpec:
    name: str
    msgtype: str
    qos: Qos = QOS_RELIABLE


# Every input and output topic of the simulator node (absolute names, default namespace).
SIM_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec('/cmd_vel', 'geometry_msgs/msg/Twist'),
    TopicSpec('/camera_pose', 'geometry_msgs/msg/PoseStamped'),
    TopicSpec('/hand_keypoints', 'worldscape_msgs/msg/HandKeypoints'),
    TopicSpec('/camera/image_raw', 'sensor_msgs/msg/Image'),
    TopicSpec('/camera/camera_info', 'sensor_msgs/msg/CameraInfo'),
    TopicSpec('/camera/depth/image_raw', 'sensor_msgs/msg/Image'),
    TopicSpec('/camera/depth/camera_info', 'sensor_msgs/msg/CameraInfo'),
    TopicSpec('/odom', 'nav_msgs/msg/Odometry'),
    TopicSpec('/tf', 'tf2_msgs/msg/TFMessage', qos(depth=100)),
    TopicSpec('/tf_static', 'tf2_msgs/msg/TFMessage', QOS_LATCHED),
    TopicSpec('/clock', 'rosgraph_msgs/msg/Clock', qos(depth=1, reliable=False)),
    TopicSpec('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray'),
)


class BagWriter:
    """A rosbag2 being written; use as a context manager (it closes on exceptions and Ctrl-C too)."""

    def __init__(self, path: str | Path, storage: str = 'mcap', chunk_bytes: int = CHUNK_BYTES,
                 flush_period: float = FLUSH_PERIOD_S, warn_stale: bool = True) -> None:
        if storage not in STORAGES:
            raise ValueError(f'bag storage must be one of {sorted(STORAGES)}, got {storage!r}')
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f'bag {self.path} exists already: choose another folder or remove it')
        for stale in stale_partials(self.path) if warn_stale else []:
            log.warning('%s is left from a killed recording: recover it with `worldscape bag-recover %s` or '
                        'delete it', stale, stale)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # written inside a hidden folder beside the destination, then moved: same file system, atomic rename
            self._staging = Path(tempfile.mkdtemp(prefix=f'.{self.path.name}.', suffix='.partial',
                                                  dir=self.path.parent))
        except OSError as exc:
            raise BagError(f'bag {self.path} cannot be written: {exc.strerror or exc}') from None
        plugin, version = STORAGES[storage]
        self.storage = storage
        self.chunk_bytes = int(chunk_bytes)
        self.flush_period = float(flush_period)
        self._writer: Writer | None = Writer(self._staging / self.path.name, version=version, storage_plugin=plugin)
        self._writer.open()
        self._last_flush = self._last_sync = time.monotonic()
        header = getattr(getattr(self._writer, 'storage', None), 'bio', None)
        if header is not None:
            header.flush()  # the mcap magic and header: a kill before the first chunk leaves a valid, empty mcap
        self._connections: dict[str, Connection] = {}
        self._types: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self._last_ns = 0
        self._writing = False  # a message is being written: stop_on_signals holds signals until it is done
        self._interrupted = 0

    def add_topic(self, name: str, msgtype: str, offered_qos: Qos | Iterable[Qos] = QOS_RELIABLE) -> None:
        if self._writer is None:
            raise ValueError(f'bag {self.path} is closed')
        if name in self._connections:
            if self._types[name] != msgtype:
                raise ValueError(f'topic {name} is already recorded with type {self._types[name]}, not {msgtype}')
            return
        if msgtype not in typestore().types:
            raise ValueError(f'unknown message type {msgtype!r} for topic {name}')
        profiles = [offered_qos] if isinstance(offered_qos, Qos) else list(offered_qos)
        self._connections[name] = self._writer.add_connection(name, msgtype, typestore=typestore(),
                                                              offered_qos_profiles=profiles)
        self._types[name] = msgtype
        self.counts[name] = 0

    def add_topics(self, specs: Iterable[TopicSpec]) -> None:
        for spec in specs:
            self.add_topic(spec.name, spec.msgtype, spec.qos)

    def write(self, topic: str, log_ns: int, msg: Any) -> None:
        """Serialise a rosbags message object (tools.messages) to CDR and record it at `log_ns`."""
        if topic not in self._types:
            raise ValueError(f'topic {topic} was not added to bag {self.path}')
        self.write_cdr(topic, log_ns, typestore().serialize_cdr(msg, self._types[topic]))

    def write_cdr(self, topic: str, log_ns: int, data: bytes | memoryview) -> None:
        """Record already serialised CDR bytes (e.g. from an rclpy raw subscription).

        Log times never go backwards (a message stamped earlier than the last is recorded at the last time), so a
        player replays the bag in recording order.
        """
        if self._writer is None:
            raise ValueError(f'bag {self.path} is closed')
        connection = self._connections.get(topic)
        if connection is None:
            raise ValueError(f'topic {topic} was not added to bag {self.path}')
        self._last_ns = max(self._last_ns, int(log_ns))
        self._writing = True
        try:
            self._writer.write(connection, self._last_ns, data)
            self.counts[topic] += 1
            self.flush(force=False)
        finally:
            self._writing = False
        if self._interrupted:
            signum, self._interrupted = self._interrupted, 0
            raise KeyboardInterrupt(f'signal {signum}')

    def flush(self, force: bool = True) -> None:
        """Close the open mcap chunk and hand it to the operating system, so a kill from now on cannot lose it.

        Without `force`, only when the chunk is over `chunk_bytes` or older than `flush_period`. A recorder with
        quiet topics calls this on a timer. (sqlite3 bags commit at close: only mcap bags are crash-recoverable.)
        """
        storage = getattr(self._writer, 'storage', None)
        chunk = getattr(storage, 'chunk', None)
        if storage is None or chunk is None or not chunk.msgs:  # not mcap, or nothing pending
            return
        now = time.monotonic()
        if force or chunk.bio.tell() >= self.chunk_bytes or now - self._last_flush >= self.flush_period:
            storage.close_chunk()
            storage.bio.flush()
            self._last_flush = now
            if now - self._last_sync >= SYNC_PERIOD_S:
                os.fsync(storage.bio.fileno())
                self._last_sync = now

    def close(self) -> Path:
        """Write the index and metadata and move the bag into place (idempotent)."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            os.replace(self._staging / self.path.name, self.path)
            shutil.rmtree(self._staging, ignore_errors=True)
            log.info('bag %s closed: %d messages on %d topics', self.path, sum(self.counts.values()),
                     len(self.counts))
        return self.path

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def stop_on_signals(bag: BagWriter) -> Iterator[None]:
    """Ctrl-C (SIGINT) and `kill` (SIGTERM) raise KeyboardInterrupt, but never in the middle of a write.

    A signal that arrives while a message is being written is held until that write is complete, so the
    storage never holds half a record and closing leaves a readable bag.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        if bag._writing:
            bag._interrupted = signum
        else:
            raise KeyboardInterrupt(f'signal {signum}')

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stale_partials(path: str | Path) -> list[Path]:
    """Staging folders a killed recording of the bag `path` left beside it."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f'.{path.name}.*.partial') if p.is_dir())


@dataclass
class RecoveryReport:
    source: Path  # the mcap that was read
    bag: Path  # the rosbag2 written
    counts: dict[str, int]  # messages recovered per topic
    complete: bool  # the source ended cleanly (a finalised file): nothing was lost
    lost_bytes: int  # bytes after the last whole record (the open chunk at the kill)


def recover_bag(path: str | Path, out: str | Path | None = None, keep: bool = False) -> RecoveryReport:
    """Rebuild a complete rosbag2 (mcap + metadata.yaml) from a killed recording.

    path: a `.NAME.XXXX.partial` folder (or the .mcap inside it). out: where the rosbag2 goes (default: NAME, the
    folder the recording was meant for). The messages of every whole chunk are copied with their topics, types,
    offered QoS and log times; a chunk cut off by the kill is lost. The partial folder is removed afterwards unless
    `keep`.
    """
    path = Path(path)
    source, partial = _killed_recording(path)
    dest = _recovery_destination(partial, out)
    size = source.stat().st_size
    writer = BagWriter(dest, 'mcap', warn_stale=False)
    try:
        complete, consumed = _copy_records(source, size, writer)
    except BaseException:
        writer.close()
        shutil.rmtree(dest, ignore_errors=True)
        raise
    writer.close()
    if not keep and partial.is_dir() and partial != dest and partial.name.endswith('.partial'):
        shutil.rmtree(partial)
    return RecoveryReport(source, dest, dict(writer.counts), complete, 0 if complete else max(0, size - consumed))


def _killed_recording(path: Path) -> tuple[Path, Path]:
    """The mcap a killed recording left and its `.partial` folder, from either of them."""
    if not path.exists():
        raise BagError(f'{path} does not exist')
    if not path.is_dir():
        return path, path.parent.parent
    if (path / 'metadata.yaml').is_file():
        raise BagError(f'{path} has its metadata.yaml: it is a complete rosbag2 already')
    files = sorted(path.rglob('*.mcap'))
    if not files:
        raise BagError(f'{path} holds no .mcap recording to recover')
    return files[0], path


def _recovery_destination(partial: Path, out: str | Path | None) -> Path:
    """`out`, or by default the folder the recording was meant for; refused when it exists."""
    name = partial.name
    if name.startswith('.') and name.endswith('.partial'):
        name = name[1:].rsplit('.', 2)[0]  # '.bag.k3j2.partial' -> 'bag'
    dest = Path(out) if out is not None else partial.parent / name
    if dest.exists():
        raise BagError(f'{dest} exists already: pass another destination (--out)')
    return dest


def _copy_records(source: Path, size: int, writer: BagWriter) -> tuple[bool, int]:
    """Stream the source's records into the writer up to the first cut-off one; returns whether the source ended
    cleanly and the bytes of whole records read."""
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader
    from rosbags.rosbag2.metadata import parse_qos

    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    buffered: list[Message] = []
    complete = False
    consumed = 0
    with source.open('rb') as f:
        reader = StreamReader(f, record_size_limit=size)
        try:
            for record in reader.records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                    _add_recovered_topic(writer, record, schemas.get(record.schema_id), parse_qos)
                elif isinstance(record, Message) and record.channel_id in channels:
                    buffered.append(record)
                    if len(buffered) >= 256:
                        _write_recovered(writer, channels, buffered)
                consumed = f.tell()
            complete = True
        except (McapError, ValueError, EOFError, struct.error) as exc:  # the cut: a half-written record
            log.info('%s ends in a cut-off record after byte %d: %s', source, consumed, exc)
    _write_recovered(writer, channels, buffered)
    return complete, consumed


def _add_recovered_topic(writer: BagWriter, channel: Any, schema: Any, parse_qos: Any) -> None:
    msgtype = schema.name if schema is not None else ''
    if msgtype not in typestore().types and schema is not None and schema.encoding == 'ros2msg':
        from rosbags.typesys import get_types_from_msg

        typestore().register(get_types_from_msg(schema.data.decode(), msgtype))  # a type outside our store
    qos_text = channel.metadata.get('offered_qos_profiles', '')
    profiles = parse_qos(qos_text) if qos_text else [QOS_RELIABLE]
    writer.add_topic(channel.topic, msgtype, profiles)


def _write_recovered(writer: BagWriter, channels: dict[int, Any], messages: list[Any]) -> None:
    for m in messages:
        writer.write_cdr(channels[m.channel_id].topic, m.log_time, m.data)
    messages.clear()


@dataclass
class BagMessage:
    topic: str
    msgtype: str
    log_ns: int
    msg: Any


def read_bag(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Messages of a rosbag2 (any storage, version 8 or 9) in log-time order, deserialised by rosbags; with
    `topics`, those topics' only (none when the bag holds none of them)."""
    path = Path(path)
    if not (path / 'metadata.yaml').is_file():
        raise FileNotFoundError(f'{path} is not a rosbag2 folder (no metadata.yaml)')
    wanted = set(topics) if topics is not None else None
    with AnyReader([path], default_typestore=typestore()) as reader:
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not conns and wanted is not None:
            return  # rosbags reads an empty connection filter as no filter: every message
        for conn, log_ns, raw in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, log_ns, reader.deserialize(raw, conn.msgtype))


def bag_topics(path: str | Path) -> dict[str, tuple[str, int, list[Qos]]]:
    """topic -> (message type, message count, offered QoS profiles) from the bag's own index."""
    with AnyReader([Path(path)], default_typestore=typestore()) as reader:
        out: dict[str, tuple[str, int, list[Qos]]] = {}
        for c in reader.connections:
            qos_list = list(getattr(c.ext, 'offered_qos_profiles', []))
            out[c.topic] = (c.msgtype, c.msgcount, qos_list)
        return out
