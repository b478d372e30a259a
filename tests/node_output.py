"""Spawned nodes' output, for tests that drive ROS processes (a helper, not a test module)."""

from __future__ import annotations

import os
import select
import subprocess
import time


def wait_for_output(proc: subprocess.Popen, texts: list[str], timeout: float = 60.0) -> str:
    """Read a spawned node's output until every one of `texts` has appeared; returns what was read."""
    assert proc.stdout is not None
    fd, seen = proc.stdout.fileno(), b''
    deadline = time.monotonic() + timeout
    while not all(t.encode() in seen for t in texts):
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f'{texts} not all in the output: {seen.decode()}'
        if select.select([fd], [], [], left)[0]:
            seen += os.read(fd, 65536)
    return seen.decode()
