"""Peak resident memory of this process, for benchmarks that measure in child processes.

Linux keeps ``ru_maxrss`` across fork and exec, so a child started by a large parent would report
the parent's peak; ``VmHWM`` (the high-water mark of this process's own memory map) resets at
exec, so it is the child's own peak.
"""

from __future__ import annotations

import re
from pathlib import Path


def peak_mb() -> float:
    """Peak resident set size of this process in MiB (VmHWM from /proc/self/status)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
