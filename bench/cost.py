"""What a workload costs: CPU time per process group from /proc, commits and statements.

`CostMeter` samples, every 0.25 s, the CPU time (user + system, from
/proc/<pid>/stat) of three groups, each separately:

- workers: every process of every process tree the bench started (the
  django-q2 cluster's sentinel, workers, monitor and pusher, and the ticker);
- postgres: the PostgreSQL backends connected to the bench's database (found
  in pg_stat_activity), except the meter's own connection;
- client: the bench process's main thread (starts, waits, polls).

A process that appears during the window counts from zero; one that exits
keeps its last sample. Statements and commits come from the probe that
`bench/probe/sitecustomize.py` loads into the bench's child processes (the
worker side only: the client's own reads are not counted).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class CostMeter:
    def __init__(self, procs, pg_url: str | None, probe_dir: Path | None,
                 every_s: float = 0.25):
        self.procs = procs
        self.pg_url = pg_url
        self.probe_dir = probe_dir
        self.every_s = every_s
        self._stop = threading.Event()
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._conn = None

    # --- sampling ------------------------------------------------------------
    def _pids(self) -> dict[str, list[int]]:
        groups = {"workers": [p.pid for p in self.procs.all_processes()], "postgres": []}
        if self._conn is not None:
            rows = self._conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()").fetchall()
            groups["postgres"] = [r[0] for r in rows]
        return groups

    def _sample(self, first: bool = False) -> None:
        for group, pids in self._pids().items():
            for pid in pids:
                seconds = cpu_seconds(pid)
                if seconds is None:
                    continue
                key = (group, pid)
                # A process born during the window counts from zero.
                self._first.setdefault(key, seconds if first else 0.0)
                self._last[key] = seconds
        client = cpu_seconds(os.getpid(), os.getpid())
        if client is not None:
            self._first.setdefault(("client", 0), client)
            self._last[("client", 0)] = client

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def probe_totals(self) -> dict[str, int]:
        totals = {"statements": 0, "commits": 0}
        if self.probe_dir is None:
            return totals
        for path in self.probe_dir.glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for key in totals:
                totals[key] += data.get(key, 0)
        return totals

    def __enter__(self):
        if self.pg_url:
            import psycopg

            self._conn = psycopg.connect(self.pg_url, autocommit=True)
        self._probe_before = self.probe_totals()
        self._sample(first=True)
        self._thread = threading.Thread(target=self._run, daemon=True, name="cost-meter")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        import time

        self._stop.set()
        self._thread.join()
        self._sample()
        time.sleep(0.5)  # the probes write their totals every 0.2 s
        self._probe_after = self.probe_totals()
        if self._conn is not None:
            self._conn.close()

    # --- figures ---------------------------------------------------------------
    def cpu_by_group(self) -> dict[str, float]:
        out = {"workers": 0.0, "postgres": 0.0, "client": 0.0}
        for (group, _pid), last in self._last.items():
            out[group] += max(0.0, last - self._first.get((group, _pid), 0.0))
        return out

    def per_node(self, nodes: int) -> dict[str, float]:
        """CPU ms per node for each group, commits and statements per node."""
        nodes = max(1, nodes)
        cpu = self.cpu_by_group()
        figures = {f"cpu_{g}_ms_per_node": s * 1000 / nodes for g, s in cpu.items()}
        if self.pg_url is None:
            figures.pop("cpu_postgres_ms_per_node")
        if self.probe_dir is not None:
            for key in ("commits", "statements"):
                figures[f"{key}_per_node"] = (
                    self._probe_after[key] - self._probe_before[key]) / nodes
        return figures
