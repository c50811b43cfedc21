"""A process-pool child: `python -m apps.engine.poolchild`.

Reads one JSON payload per line on stdin, answers one JSON line on stdout.
A handler's own prints go to stderr, so they can never corrupt the answers.
It exits when the worker closes its stdin (or dies).
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    import django

    django.setup()
    from apps.engine.processes import READY, run_in_process

    answers.write(READY + "\n")
    for line in sys.stdin:
        answers.write(run_in_process(line) + "\n")


if __name__ == "__main__":
    main()
