"""Start-up cost (issue 17): ``import smfsym`` and ``python -m smfsym --help``, side by side with ``import sympy``.

Each command runs in a fresh interpreter, ``REPEAT`` times, interleaved (the machine is shared); the table
gives the best wall time and the best CPU time (user + system of the child, from ``resource.getrusage``:
less disturbed by other jobs). ``import smfsym; smfsym.simulate`` is what a script that simulates pays
before its first compilation. ``--before PATH`` adds the same commands with another checkout's smfsym
(e.g. /work/main) on PYTHONPATH.

Run: PYTHONPATH=$PWD python benchmarks/bench_startup.py [--quick] [--before PATH]
"""
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

QUICK = "--quick" in sys.argv
REPEAT = 3 if QUICK else 7
HERE = str(Path(__file__).resolve().parents[1])
COMMANDS = {
    "python -c 'import sympy'": ["-c", "import sympy"],
    "python -c 'import smfsym'": ["-c", "import smfsym"],
    "python -c 'import smfsym; smfsym.simulate'": ["-c", "import smfsym; smfsym.simulate"],
    "python -m smfsym --help": ["-m", "smfsym", "--help"],
}


def run_once(args, path) -> tuple:
    """(wall, cpu) seconds of one fresh interpreter running ``args`` with ``path`` on PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=path)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL, cwd="/")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    trees = {"after": HERE}
    if "--before" in sys.argv:
        trees = {"before": sys.argv[sys.argv.index("--before") + 1], **trees}
    best = {(cmd, tree): (float("inf"), float("inf")) for cmd in COMMANDS for tree in trees}
    for _ in range(REPEAT):
        for cmd, args in COMMANDS.items():
            for tree, path in trees.items():
                wall, cpu = run_once(args, path)
                w0, c0 = best[cmd, tree]
                best[cmd, tree] = (min(w0, wall), min(c0, cpu))
    print(f"## Start-up, best of {REPEAT} fresh interpreters (wall / CPU seconds)")
    print("| command | " + " | ".join(trees) + " |")
    print("|---|" + "---|" * len(trees))
    for cmd in COMMANDS:
        cells = [f"{best[cmd, t][0]:.3f} / {best[cmd, t][1]:.3f}" for t in trees]
        print(f"| `{cmd}` | " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    main()
