#!/usr/bin/env python
"""Rollout benchmark: does an active canary slow starting executions, and what
does the health judge cost?

    .venv/bin/python bench/rollout.py --db postgres --runs 3
    .venv/bin/python bench/rollout.py --db sqlite --runs 1 --scale 0.2

In one run, on the same database and processes as bench/run.py sets up
(1 `braid worker`, 2 workers, ticker in its main process), alternating
between "no release" and "an active canary at 50 %" (order flipped every
round so drift hits both alike):
- W1 latency: start → result one at a time by slug (p50, p95);
- W1 start-many: 2,000 executions by slug in one `start_many` (submit time,
  executions/s until all finished).
Then the judge: 10 workflows with an active canary and 300 finished
executions each; `judge_releases()` timed over 20 passes (wall and this
process's CPU), as a share of the judge's period (JUDGE_EVERY_S).
Its own database (braid_bench_rollout) and Redis db (11) by default.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run as bench  # noqa: E402
from bench.procs import Processes  # noqa: E402

RELEASES = 10
FINISHED_EACH = 300
JUDGE_PASSES = 20
# A canary that never decides during the bench: no promotion, no rollback.
PATIENT = {"min_executions": 10**9, "min_step_s": 10**9, "min_samples": 10**9}


def publish() -> None:
    from apps.workflows.services import publish_version

    bench.publish_workloads({})
    three = json.loads((ROOT / "examples" / "three_steps.json").read_text())
    # The same work under another checksum: the candidate costs what stable costs.
    publish_version("bench-three-steps", {**three, "description": "candidate"},
                    make_current=False)


def one_mode(mode: str, tag: str, lat_n: int, thr_n: int, procs: Processes) -> dict:
    from apps.engine import rollout

    if mode == "canary":
        rollout.deploy("bench-three-steps", 2, strategy="canary", steps=[50, 100],
                       thresholds=PATIENT, routing_key="execution_id")
    try:
        bench.analyze()
        figures = bench.w1_latency(lat_n, f"{tag}-lat")
        thr = bench.throughput("bench-three-steps", thr_n, f"{tag}-thr", 3,
                               lambda i: {"who": str(i)}, procs)
    finally:
        if mode == "canary":
            rollout.abort("bench-three-steps", reason="bench")
    from apps.engine.models import Execution

    candidate = Execution.objects.filter(client_id__startswith=tag, route="candidate").count()
    return {"latency_p50_ms": figures["latency_p50_ms"],
            "latency_p95_ms": figures["latency_p95_ms"],
            "submit_s": thr["submit_s"], "executions_per_s": thr["executions_per_s"],
            "on_candidate": candidate, "failed": figures["failed"] + thr["failed"]}


def judge_cost() -> dict:
    """10 canaries with 300 finished executions each; time judge_releases()."""
    from apps.engine import rollout
    from apps.engine.rollout_judge import JUDGE_EVERY_S, judge_releases
    from apps.workflows.services import publish_version

    three = json.loads((ROOT / "examples" / "three_steps.json").read_text())
    for i in range(RELEASES):
        slug = f"bench-judge-{i}"
        publish_version(slug, three)
        publish_version(slug, {**three, "description": "candidate"}, make_current=False)
        rollout.deploy(slug, 2, strategy="canary", steps=[50, 100], thresholds=PATIENT,
                       routing_key="execution_id")
        bench.submit(slug, FINISHED_EACH, f"judge-{i}", lambda n: {"who": str(n)})
    for i in range(RELEASES):
        if bench.wait_all(f"judge-{i}", FINISHED_EACH, 300) is None:
            raise RuntimeError(f"judge-{i}: executions did not finish")
    bench.analyze()
    judge_releases()  # warm
    walls, cpus = [], []
    for _ in range(JUDGE_PASSES):
        c0, t0 = time.process_time(), time.perf_counter()
        done = judge_releases()
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
        assert len(done) >= RELEASES and all(d == "hold" for _, d in done), done
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"releases": RELEASES, "finished_each": FINISHED_EACH, "passes": JUDGE_PASSES,
            "pass_wall_ms": wall, "pass_cpu_ms": cpu, "every_s": JUDGE_EVERY_S,
            "share_of_one_cpu_pct": 100 * cpu / (JUDGE_EVERY_S * 1000),
            "share_of_wall_pct": 100 * wall / (JUDGE_EVERY_S * 1000)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pg-db", default="braid_bench_rollout")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--runs", type=int, default=3, help="rounds of (none, canary)")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bench.PG_DB, bench.BENCH_REDIS_URL = args.pg_db, args.redis_url
    env = bench.bench_env(args.db)
    bench.fresh_database(args.db, env)
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    procs = Processes(env, bench.SQLITE_DIR / "logs" / f"rollout-{args.db}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    lat_n = bench.scaled(bench.SIZES["W1_latency"], args.scale)
    thr_n = bench.scaled(bench.SIZES["W1_throughput"], args.scale)
    rounds = []
    try:
        publish()
        procs.start_qcluster(bench.WORKERS, with_ticker=True)
        bench.log("warming up")
        bench.warm_up()
        for r in range(1, args.runs + 1):
            order = ("none", "canary") if r % 2 else ("canary", "none")
            row = {}
            for mode in order:
                procs.check_alive()
                bench.log(f"round {r}: {mode}")
                row[mode] = one_mode(mode, f"r{r}-{mode}", lat_n, thr_n, procs)
                bench.log(f"round {r} {mode}: {row[mode]}")
            rounds.append(row)
        bench.log("judge: 10 active canaries")
        judge = judge_cost()
    finally:
        procs.stop()
    report = {"db": args.db, "runs": args.runs, "latency_n": lat_n, "start_many_n": thr_n,
              "rounds": rounds, "judge": judge,
              "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def render(report: dict) -> str:
    lines = [f"rollout bench on {report['db']}: {report['runs']} round(s); W1 latency "
             f"{report['latency_n']} one at a time, start_many {report['start_many_n']}; "
             f"load {report['machine']['load']}", "",
             f"{'':24}{'no release':>14}{'canary 50%':>14}{'ratio':>8}"]
    for key, label in (("latency_p50_ms", "W1 latency p50 (ms)"),
                       ("latency_p95_ms", "W1 latency p95 (ms)"),
                       ("submit_s", "start_many submit (s)"),
                       ("executions_per_s", "start_many exec/s")):
        none = statistics.median(r["none"][key] for r in report["rounds"])
        canary = statistics.median(r["canary"][key] for r in report["rounds"])
        lines.append(f"{label:24}{none:>14.4g}{canary:>14.4g}{canary / none:>8.2f}")
    shares = [r["canary"]["on_candidate"] /
              (report["latency_n"] + report["start_many_n"]) for r in report["rounds"]]
    lines.append(f"{'share on candidate':24}{'':>14}{statistics.median(shares):>14.1%}")
    j = report["judge"]
    lines += ["", f"judge, {j['releases']} active canaries x {j['finished_each']} finished: "
              f"{j['pass_wall_ms']:.1f} ms wall, {j['pass_cpu_ms']:.1f} ms CPU per pass, "
              f"every {j['every_s']:g} s = {j['share_of_one_cpu_pct']:.2f} % of one CPU "
              f"({j['share_of_wall_pct']:.2f} % counting database time)"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
