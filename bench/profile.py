"""py-spy on the bench's worker processes during a workload (`bench/run.py --profile`).

`py-spy record --format raw` writes collapsed stacks (`frame;frame;leaf count`)
per process. The summary is the top frames by *self* time: samples whose leaf
frame is that function, over every process profiled. Idle threads (blocked in
a lock, a select or a sleep) are not sampled, so the shares are of CPU, not of
wall time. py-spy needs ptrace rights (root, or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Profiler:
    def __init__(self, procs, out_dir: Path, label: str, rate: int = 250):
        self.procs = procs
        self.out_dir = out_dir
        self.label = label
        self.rate = rate
        self.children: list[subprocess.Popen] = []
        self.files: list[Path] = []

    def __enter__(self):
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install -e '.[dev]')")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for proc in self.procs.all_processes():
            path = self.out_dir / f"{self.label}-{proc.pid}.txt"
            self.files.append(path)
            self.children.append(subprocess.Popen(
                [exe, "record", "--pid", str(proc.pid), "--format", "raw", "--rate",
                 str(self.rate), "--nonblocking", "--gil", "--function", "--output", str(path)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return self

    def __exit__(self, *exc):
        for child in self.children:
            child.send_signal(signal.SIGINT)
        for child in self.children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()

    def top_self(self, n: int = 10) -> list[tuple[str, float]]:
        return top_self(self.files, n)


def top_self(files: list[Path], n: int = 10) -> list[tuple[str, float]]:
    """The `n` frames with the most self samples, as (frame, share of all samples)."""
    leaves: Counter = Counter()
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            match = LINE.match(line)
            if match:
                leaf = match["stack"].rsplit(";", 1)[-1]
                leaves[leaf] += int(match["count"])
    total = sum(leaves.values()) or 1
    return [(frame, count / total) for frame, count in leaves.most_common(n)]
