"""Reference points measured in the same run as the workloads, so figures compare.

(a) `claim_loop`: plain psycopg, 2 processes, each transaction claims one row
    with `SELECT … FOR UPDATE SKIP LOCKED`, updates it and inserts one row, then
    commits (durably). Transactions per second: what this machine's database
    and cores allow a minimal durable queue, with no framework at all.
(b) `cpu_loop`: a fixed CPU-bound pure-Python loop in the bench process.
    Operations per second: how fast this machine's cores run Python right now.

Every throughput the bench prints is also given as a ratio to (a).

    python bench/reference.py claim-worker URL SECONDS START_AT   # one process of (a)
"""

from __future__ import annotations

import subprocess
import sys
import time

JOBS = 40_000
PROCESSES = 2
SETUP = """
CREATE TABLE IF NOT EXISTS bench_ref_job (id bigserial PRIMARY KEY, status text NOT NULL,
                                          worker int, payload text);
CREATE INDEX IF NOT EXISTS bench_ref_job_ready ON bench_ref_job (id) WHERE status = 'ready';
CREATE TABLE IF NOT EXISTS bench_ref_done (id bigserial PRIMARY KEY, job_id bigint NOT NULL,
                                           at timestamptz NOT NULL DEFAULT now());
TRUNCATE bench_ref_job, bench_ref_done;
"""
CLAIM = ("SELECT id FROM bench_ref_job WHERE status = 'ready' ORDER BY id LIMIT 1 "
         "FOR UPDATE SKIP LOCKED")


def claim_worker(url: str, seconds: float, start_at: float) -> int:
    """One process of (a): claim + update + insert per transaction until the time is up."""
    import os

    import psycopg

    done = 0
    with psycopg.connect(url) as conn:
        while time.time() < start_at:
            time.sleep(0.001)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with conn.transaction():
                row = conn.execute(CLAIM).fetchone()
                if row is None:
                    break
                conn.execute("UPDATE bench_ref_job SET status = 'done', worker = %s "
                             "WHERE id = %s", (os.getpid(), row[0]))
                conn.execute("INSERT INTO bench_ref_done (job_id) VALUES (%s)", (row[0],))
            done += 1
    return done


def claim_loop(url: str, seconds: float = 3.0) -> float:
    """Reference (a), transactions/s over PROCESSES processes."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SETUP)
        conn.execute("INSERT INTO bench_ref_job (status, payload) "
                     "SELECT 'ready', repeat('x', 64) FROM generate_series(1, %s)", (JOBS,))
        conn.execute("ANALYZE bench_ref_job")
    start_at = time.time() + 0.5
    children = [subprocess.Popen([sys.executable, __file__, "claim-worker", url, str(seconds),
                                  str(start_at)], stdout=subprocess.PIPE, text=True)
                for _ in range(PROCESSES)]
    total = 0
    for child in children:
        out, _ = child.communicate(timeout=seconds + 60)
        if child.returncode != 0:
            raise RuntimeError(f"reference (a) process failed: {out}")
        total += int(out.strip())
    return total / seconds


def cpu_loop(seconds: float = 1.0) -> float:
    """Reference (b): operations/s of a fixed pure-Python loop (one op = 1,000 steps)."""
    ops = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        acc = 0
        for i in range(1000):
            acc = (acc * 31 + i) % 1_000_003
        ops += 1
    return ops / seconds


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "claim-worker":
        print(claim_worker(sys.argv[2], float(sys.argv[3]), float(sys.argv[4])))
    else:
        sys.exit(__doc__)
