"""Which of the simulator's threads runs torch's intra-op threads: the inference thread alone.

torch's CPU kernels run on OpenMP (libgomp), which keeps one team of worker threads for each thread that runs a
parallel region, and stops spinning between regions once its teams hold more threads than the machine has
cores (1,000 spins instead of 300,000): from then on every region wakes its workers through the kernel. When the
executor thread made a team of its own at configure (loading the model, rendering the start view), the inference
thread's team ran in that mode: on 2 cores about 3,000 futex calls per frame, and the same engine stepped 40%
slower in the node than alone. So the executor thread's engine work (configure, the services' resets) runs on
one thread, which makes no team, and the inference thread sets the count it steps with.
"""

from __future__ import annotations

import functools


@functools.cache
def default_threads() -> int:
    """torch's intra-op thread count before the node changes it (the cores, or OMP_NUM_THREADS)."""
    import torch

    return torch.get_num_threads()


def executor_thread_single() -> None:
    """In the executor thread: its engine work from now on runs on this thread alone (no OpenMP team)."""
    import torch

    default_threads()  # remembered before the change
    torch.set_num_threads(1)


def inference_thread_threads(threads: int) -> int:
    """In the inference thread: step with `threads` intra-op threads (0: torch's default); the count set."""
    import torch

    count = threads or default_threads()
    torch.set_num_threads(count)
    return count
