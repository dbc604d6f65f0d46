"""CPU affinity for training jobs on the GPU machine.

A device call's shell was seen pinned to one CPU: every process it starts inherits that, so example-building
workers and training runs would share one core. ``nproc`` there answers 1 whatever the affinity (it follows
``OMP_NUM_THREADS``, which gpu.sh sets to 1), so the count below is read from the affinity itself.
"""
from __future__ import annotations

import os


def use_all_cpus() -> int:
    """Widen this process's CPU affinity (which the processes it starts inherit) to every online CPU where the
    OS allows it; return how many CPUs it may use."""
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    except (AttributeError, OSError):
        pass
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
