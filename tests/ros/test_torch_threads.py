"""The simulator's torch threads: the executor thread's engine work runs on one thread (no OpenMP team of its
own), the inference thread steps with the count asked for, and each thread keeps its own count."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
import torch

from worldscape_ros.ros.torch_threads import default_threads, executor_thread_single, inference_thread_threads


def os_threads() -> int:
    return len(os.listdir('/proc/self/task'))


def settled_threads() -> int:
    """The thread count once the workers of threads that ended have exited too."""
    count = os_threads()
    for _ in range(50):
        time.sleep(0.02)
        count, previous = os_threads(), count
        if count == previous:
            break
    return count


def parallel_work() -> None:
    a = torch.randn(256, 256)
    (a @ a).sum()
    (torch.randn(1 << 20) * 2.0).sum()


@pytest.fixture
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_the_inference_thread_steps_with_its_count_while_the_executor_thread_stays_on_one(restore_threads):
    executor_thread_single()

    def inference() -> tuple[int, int]:
        set_to = inference_thread_threads(2)
        parallel_work()
        return set_to, torch.get_num_threads()

    assert in_thread(inference) == (2, 2)
    assert torch.get_num_threads() == 1  # the executor thread's own count is untouched by the other's


def test_the_executor_threads_engine_work_starts_no_worker_threads(restore_threads):
    executor_thread_single()
    in_thread(lambda: inference_thread_threads(2))  # the process-wide count is 2 again
    before = settled_threads()
    parallel_work()
    assert os_threads() == before


def test_zero_threads_is_torchs_default_from_before_the_node_changed_it(restore_threads):
    executor_thread_single()
    assert in_thread(lambda: inference_thread_threads(0)) == default_threads()
