#!/usr/bin/env python3
"""Objective against wall time for one training command (benchmarks/run).

  logreg_trace.py OUT.dat hyperad|liblinear -- COMMAND...

Runs COMMAND with stdout and stderr on one pipe, stamps every line with the
seconds since the process was started (monotonic clock), and writes
OUT.dat: "seconds iteration objective" per Newton iteration, the objective
*after* the iteration:
  hyperad-logreg (stderr):  "iter K  f F ..."          -> F
  liblinear-train (stdout): "iter K act A ... f F ..." -> F - A (its f is
                            the value before the step, act the reduction)
The first line is the total wall time of the command as a comment.  Exit
status: the command's, or 1 when no iteration line was seen.
"""
import re
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    out, tool, cmd = sys.argv[1], sys.argv[2], sys.argv[4:]
    pat_h = re.compile(r"^iter\s+(\d+)\s+f\s+(\S+)")
    pat_l = re.compile(r"^iter\s+(\d+)\s+act\s+(\S+).*?\sf\s+(\S+)")
    rows = []
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in p.stdout:
        t = time.monotonic() - t0
        if tool == "hyperad":
            m = pat_h.match(line)
            if m:
                rows.append((t, int(m.group(1)), float(m.group(2))))
        else:
            m = pat_l.match(line)
            if m:
                rows.append((t, int(m.group(1)), float(m.group(3)) - float(m.group(2))))
    rc = p.wait()
    total = time.monotonic() - t0
    with open(out, "w") as f:
        f.write(f"# total {total:.6f} s, status {rc}: {' '.join(cmd)}\n")
        for t, k, obj in rows:
            f.write(f"{t:.6f} {k} {obj:.12e}\n")
    if rc != 0:
        print(f"logreg_trace: command failed with status {rc}: {' '.join(cmd)}", file=sys.stderr)
        return rc
    if not rows:
        print(f"logreg_trace: no iteration lines from {' '.join(cmd)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
