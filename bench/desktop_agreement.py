"""How closely a Syncplay desktop player (the real client and mpv) follows the browser.

Runs the bridge's acceptance test (``tests/web/test_syncplay_desktop.py``: Debian's
``syncplay`` console client with a headless mpv, beside the watch page in Chromium, one
daemon) ``--runs`` times, each a fresh daemon, room and players, and collects what each run
measured while playing: 40 samples over 20 s of mpv's position against the browser's at the
same instant. Prints each run and the summary (the median of the runs' medians, the worst
p95) as docs/benchmarks.md reports them.

    .venv/bin/python bench/desktop_agreement.py --runs 5

Needs what the test needs: chromium, syncplay and mpv (``.ci/run`` installs them).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "test-artifacts" / "browser" / "agreement.txt"
LINE = re.compile(
    r"syncplay desktop \(mpv\) vs browser: .*? median (?P<median>[-+.\d]+) ms,"
    r" p95 \|offset\| (?P<p95>[.\d]+) ms, worst (?P<worst>[.\d]+) ms"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh runs (default 5, at most 20)")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 20))
    results = []
    for run in range(1, runs + 1):
        before = RECORD.read_text().count("\n") if RECORD.exists() else 0
        test = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/web/test_syncplay_desktop.py"],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        new = RECORD.read_text().splitlines()[before:] if RECORD.exists() else []
        found = [m for line in new if (m := LINE.search(line))]
        if test.returncode != 0 or not found:
            print(f"run {run}: the test failed\n{test.stdout[-3000:]}", file=sys.stderr)
            return 1
        median, p95, worst = (float(found[-1][k]) for k in ("median", "p95", "worst"))
        results.append((median, p95, worst))
        print(f"run {run}: median {median:+.1f} ms, p95 {p95:.1f} ms, worst {worst:.1f} ms")
    medians = [abs(m) for m, _, _ in results]
    print(
        f"{runs} runs: median of |run medians| {statistics.median(medians):.1f} ms,"
        f" worst run median {max(medians):.1f} ms, worst p95 {max(p for _, p, _ in results):.1f}"
        f" ms, worst sample {max(w for _, _, w in results):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
