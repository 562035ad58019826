#!/bin/sh
# benchmarks/run_ad.sh [--quick] [--no-build] [--update-results] [--report-only]
# — hyperad's drivers beside
# ADOL-C's on the functions of ../shared/ANCHORS.md (issue 9's benchmark).
#
# Builds bench_ad (meson release, build dir build-bench, or $BUILD_DIR), runs
# every case, and writes a markdown report to stdout; progress goes to
# stderr, the raw output of every run to $BENCH_LOGDIR (default
# build-bench/bench-logs).  Exit status 1 when a run failed or a derivative
# check came out wrong.
#
# Per case, one process times everything side by side (plain f, the
# hand-coded floor, hyperad, ADOL-C: `bench_ad --tool all --fn F --n N`), then
# one process per tool reads its peak RSS (`--rss-only`: record, check, one
# call of each driver).
#
# ADOL-C gets in-core tape buffers (a .adolcrc in the run directory, 2^26
# entries each), so its tape stays in memory as in ANCHORS.md (peak RSS
# 449 MiB on Rosenbrock 10^6).  ADOLC_DEFAULT_BUFFERS=1 keeps Debian's default
# buffers instead (tapes over 2^19 entries then go to files).
#
# --update-results also writes the report into benchmarks/RESULTS.md, between
# its "BEGIN/END run_ad.sh report" markers (not with --quick).  --report-only
# rebuilds the report from the logs of the last run (no build, no timing).
#
# A full run takes about 4–5 minutes on the 2-CPU VM; --quick about 8 seconds.
# (Cases: chain = the deep transcendental chain of bench_ad --fn chain;
# dense:300 is there for the Hessian scaling fit of benchmarks/run.)
set -eu

export MALLOC_MMAP_MAX_=0
export MALLOC_TRIM_THRESHOLD_=68719476736

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build-bench}
quick=
nobuild=
update=
reportonly=
for a in "$@"; do
  case $a in
    --quick) quick=--quick ;;
    --no-build) nobuild=1 ;;
    --update-results) update=1 ;;
    --report-only) reportonly=1 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "run_ad.sh: unknown argument '$a'" >&2; exit 2 ;;
  esac
done

if [ -n "$update" ] && [ -n "$quick" ]; then
  echo "run_ad.sh: --update-results records full runs only (drop --quick)" >&2; exit 2
fi

bin=$build/benchmarks/bench_ad
logdir=${BENCH_LOGDIR:-$build/bench-logs}
meta="$logdir/meta.txt"
status=0
if [ -z "$reportonly" ]; then

if [ -z "$nobuild" ]; then
  if [ ! -d "$build" ]; then
    meson setup "$build" -Dbuildtype=release >&2
  fi
  ninja -C "$build" benchmarks/bench_ad >&2
fi
[ -x "$bin" ] || { echo "run_ad.sh: $bin not built" >&2; exit 2; }

mkdir -p "$logdir"
rm -f "$logdir"/*.txt "$logdir/report.md"
rundir=$(mktemp -d)
trap 'rm -rf "$rundir"' EXIT INT TERM
if [ "${ADOLC_DEFAULT_BUFFERS:-0}" != 1 ]; then
  cat > "$rundir/.adolcrc" <<'EOF'
"OBUFSIZE" = "67108864"
"LBUFSIZE" = "67108864"
"VBUFSIZE" = "67108864"
"TBUFSIZE" = "67108864"
"TBUFNUM" = "32"
EOF
  adolc_buffers="in-core: .adolcrc with OBUFSIZE = LBUFSIZE = VBUFSIZE = TBUFSIZE = 67108864, TBUFNUM = 32"
else
  adolc_buffers="Debian defaults (524288 entries per buffer; bigger tapes go to files)"
fi

if [ -n "$quick" ]; then
  cases="rosen:1000 rosen:10000 logreg:20 dense:20 dense:100 chain:10"
else
  cases="rosen:1000 rosen:10000 rosen:100000 rosen:1000000 logreg:100 dense:100 dense:300 dense:1000 chain:100 chain:1000"
fi

have_adolc=1
if "$bin" --quick --rss-only --tool plain --fn dense --n 2 2>/dev/null | grep -q 'ADOL-C (not built)'; then
  have_adolc=0
  echo "run_ad.sh: bench_ad was built without ADOL-C (libadolc-dev missing?)" >&2
fi
tools_rss="plain hyperad"
[ "$have_adolc" = 1 ] && tools_rss="plain hyperad adolc"

start=$(date +%s)
# What was measured, fixed before the runs (the tree may change meanwhile).
{
  echo "gitrev='$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)'"
  echo "started='$(date -u '+%Y-%m-%d %H:%M') UTC'"
  echo "quick='$quick'"
  echo "adolc_buffers='$adolc_buffers'"
  echo "hyperad_optimize='${HYPERAD_OPTIMIZE:-(unset: on)}'"
  echo "hyperad_preacc='${HYPERAD_PREACC:-(unset: on)}'"
} > "$meta"
for c in $cases; do
  fn=${c%%:*}
  n=${c#*:}
  extra=
  [ -n "$quick" ] && [ "$fn" = logreg ] && extra="--m 500"
  log="$logdir/time_${fn}_${n}.txt"
  echo "[$(date -u +%H:%M:%S)] $bin $quick --tool all --fn $fn --n $n $extra" >&2
  (cd "$rundir" && "$bin" $quick --tool all --fn "$fn" --n "$n" $extra) > "$log" 2>&1 || {
    echo "run_ad.sh: FAILED (status $?): see $log" >&2; status=1; }
  for t in $tools_rss; do
    rlog="$logdir/rss_${t}_${fn}_${n}.txt"
    (cd "$rundir" && "$bin" $quick --rss-only --tool "$t" --fn "$fn" --n "$n" $extra) > "$rlog" 2>&1 || {
      echo "run_ad.sh: FAILED (status $?): see $rlog" >&2; status=1; }
  done
done
elapsed=$(( $(date +%s) - start ))
echo "elapsed='$elapsed'" >> "$meta"
echo "runstatus='$status'" >> "$meta"
echo "[$(date -u +%H:%M:%S)] done in ${elapsed} s; logs in $logdir" >&2

fi # not --report-only

[ -f "$meta" ] || { echo "run_ad.sh: no $meta: run without --report-only first" >&2; exit 2; }
. "$meta"
[ "${runstatus:-1}" = 0 ] || status=1
if [ -n "$update" ] && [ -n "$quick" ]; then
  echo "run_ad.sh: the logs are of a --quick run: not written to RESULTS.md" >&2; exit 2
fi

report="$logdir/report.md"
machine=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
ncpu=$(nproc 2>/dev/null || echo '?')
adolc_ver=$(pkg-config --modversion adolc 2>/dev/null || echo 'not found')
ccver=$(cc --version 2>/dev/null | head -1)
mesonver=$(meson --version 2>/dev/null || echo '?')

BENCH_MACHINE="$machine, $ncpu CPUs" BENCH_GITREV="$gitrev" BENCH_ADOLC="$adolc_ver" \
BENCH_CC="$ccver" BENCH_MESON="$mesonver" BENCH_ELAPSED="$elapsed" BENCH_QUICK="$quick" \
BENCH_ADOLC_BUFFERS="$adolc_buffers" BENCH_BIN="$bin" BENCH_ROOT="$root" BENCH_STATUS="$status" \
BENCH_STARTED="$started" HYPERAD_OPTIMIZE="$hyperad_optimize" HYPERAD_PREACC="$hyperad_preacc" \
python3 - "$logdir" > "$report" <<'PYEOF' || status=1
import glob, os, re, sys, datetime
logdir = sys.argv[1]
E = os.environ
res = {}    # (fn, n) -> tool -> metric -> (med, min, max, ratio, reps)
info = {}   # (fn, n) -> tool -> key -> value
rss = {}    # (fn, n) -> tool -> KiB
bad = []    # lines that report a failure
loads = []  # 1-minute load averages at the start and end of every process
for path in sorted(glob.glob(os.path.join(logdir, "*.txt"))):
    base = os.path.basename(path)
    m = re.match(r"rss_(\w+?)_(\w+?)_(\d+)\.txt$", base)
    for line in open(path, errors="replace"):
        if "WRONG" in line or "ERROR" in line or "FAILED" in line or "FAILURE" in line:
            bad.append(f"{base}: {line.strip()}")
        p = line.rstrip("\n").split("\t")
        if p[0] == "RESULT" and len(p) == 10:
            key = (p[1], int(p[2]))
            vals = tuple(float(v) for v in p[5:9]) + (int(p[9]),)
            res.setdefault(key, {}).setdefault(p[3], {})[p[4]] = vals
        elif p[0] == "INFO" and len(p) == 6:
            if p[1] == "-" and p[4] == "peak_rss_kib" and m:
                rss.setdefault((m.group(2), int(m.group(3))), {})[m.group(1)] = int(p[5])
            elif p[1] == "-" and p[4].startswith("loadavg_"):
                try:
                    loads.append(float(p[5].split()[0]))
                except (ValueError, IndexError):
                    pass
            elif p[1] != "-":
                info.setdefault((p[1], int(p[2])), {}).setdefault(p[3], {})[p[4]] = p[5]

def ft(s):
    if s != s: return "–"
    if s < 1e-6: return f"{s*1e9:.0f} ns"
    if s < 1e-3: return f"{s*1e6:.3g} µs"
    if s < 1: return f"{s*1e3:.3g} ms"
    return f"{s:.3g} s"
def fx(r):
    if r != r: return "–"
    return f"{r:.3g}×" if r < 1000 else f"{r:,.0f}×".replace(",", " ")

# Ratios to f: the lower of the two medians of f (measured at the start and at
# the end of the process), so that a burst of load during one f measurement
# does not deflate every ratio of the case.
fref = {}
for k, r in res.items():
    p0 = r.get("plain", {})
    cands = [v[0] for v in (p0.get("f"), p0.get("f_end")) if v and v[0] == v[0] and v[0] > 0]
    fref[k] = min(cands) if cands else float("nan")
def ratio(k, tool, metric):
    v = res.get(k, {}).get(tool, {}).get(metric)
    return v[0] / fref[k] if v and fref.get(k, 0) > 0 else float("nan")

order = {"rosen": 0, "logreg": 1, "dense": 2, "chain": 3}
keys = sorted(set(res) | set(info), key=lambda k: (order.get(k[0], 9), k[1]))
def label(k):
    fn, n = k
    if fn == "logreg":
        m = info.get(k, {}).get("all", {}).get("m", "?")
        return f"logreg m={m} d={n}"
    return f"{fn} n={n}"
metrics = ["record", "rec+opt", "rec+grad", "eval", "gradient", "hvp_newx", "hvp_samex", "hvp_cg10", "hessian"]
mhead = ["record", "record + optimize", "record + 1st gradient", "eval (new x)", "gradient (new x)",
         "HVP new x", "HVP same x", "HVP, 10 per x", "Hessian"]

binrel = os.path.relpath(E.get("BENCH_BIN", ""), E.get("BENCH_ROOT", "."))
out = []
w = out.append
w(f"# hyperad vs ADOL-C: bench_ad{' (QUICK run: small sizes, 1 short batch; not for citing)' if E.get('BENCH_QUICK') else ''}")
w("")
w(f"- machine: {E.get('BENCH_MACHINE')}; run started {E.get('BENCH_STARTED')}")
w(f"- hyperad {E.get('BENCH_GITREV')}; ADOL-C {E.get('BENCH_ADOLC')} (Debian libadolc-dev); {E.get('BENCH_CC')}; meson {E.get('BENCH_MESON')}")
w(f"- command: `benchmarks/run_ad.sh {E.get('BENCH_QUICK')}` (total {E.get('BENCH_ELAPSED')} s); per case "
  f"`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 {binrel} --tool all --fn F --n N`"
  f" for the times, then `--rss-only --tool T` per tool for the peak RSS")
w(f"- ADOL-C tape buffers: {E.get('BENCH_ADOLC_BUFFERS')}")
w(f"- hyperad switches: HYPERAD_OPTIMIZE={E.get('HYPERAD_OPTIMIZE')}, HYPERAD_PREACC={E.get('HYPERAD_PREACC')}")
if loads:
    w(f"- 1-minute load average of the machine during the run: {min(loads):.2f}–{max(loads):.2f} on {E.get('BENCH_MACHINE', '').split(', ')[-1]}"
      + " (the benchmark itself counts about 1)"
      + (" — BUSY: other work ran beside the benchmark; absolute times and ratios to f are inflated/noisy" if max(loads) > 2.0 else ""))
w("- timing: one warm-up call, batches of back-to-back calls ≥ 0.2 s, median of 5 batches (min–max below), CLOCK_MONOTONIC; "
  "\"new x\" alternates two points each call, \"same x\" repeats one; ratios are to the plain C function (-O2) timed in the same process")
w("")
w("## Ratio to the plain function (median)")
w("")
w("| case | f | tool | " + " | ".join(mhead) + " | tape bytes/op | nodes | peak RSS |")
w("|---|---|---|" + "---|" * len(mhead) + "---|---|---|")
for k in keys:
    r = res.get(k, {})
    f = fref.get(k, float("nan"))
    first = True
    for tool, name in (("hand", "hand-coded"), ("hyperad", "hyperad"), ("adolc", "ADOL-C")):
        if tool not in r and tool not in info.get(k, {}):
            continue
        cells = [fx(ratio(k, tool, mm)) for mm in metrics]
        it = info.get(k, {}).get(tool, {})
        bpo = it.get("bytes_per_op", "")
        bpo = f"{float(bpo):.1f}" if bpo else ""
        if it.get("bytes_per_op_recorded") and it.get("nodes_recorded") != it.get("nodes"):
            bpo = f"{float(it['bytes_per_op_recorded']):.1f} → {bpo}"
        rs = rss.get(k, {}).get("plain" if tool == "hand" else tool)
        rs = f"{rs/1024:.0f} MiB" if rs else ""
        nodes = it.get("nodes", "")
        if it.get("nodes_recorded") and it.get("nodes_recorded") != nodes:
            nodes = f"{it['nodes_recorded']} → {nodes}"
        w(f"| {label(k) if first else ''} | {ft(f) if first else ''} | {name} | " + " | ".join(cells) +
          f" | {bpo} | {nodes} | {rs} |")
        first = False
    if "hyperad" in r and "adolc" in r:
        cells = []
        for mm in metrics:
            a, h = r["adolc"].get(mm), r["hyperad"].get(mm)
            cells.append(f"**{a[0]/h[0]:.2f}×**" if a and h and h[0] > 0 and a[0] == a[0] else "–")
        w(f"| | | hyperad speed-up | " + " | ".join(cells) + " | | | |")
w("")
w("\"hand-coded\" is the floor (hand-written gradient and HVP in C); \"hyperad speed-up\" is ADOL-C's median time over hyperad's. "
  "Peak RSS: ru_maxrss of a process that ran only that tool on that case (\"hand-coded\" row: the data alone). "
  "ADOL-C bytes/op: (operations × 1 + locations × 4 + values × 8) / operations from tapestats(); "
  "hyperad: ad_tape_bytes_per_op() (op code, argument indices, constants, vector-node argument lists, and the value array), "
  "recorded → optimized (an optimized sum/dot node holds a long argument list, so its bytes per node grow while the total shrinks); "
  "nodes \"recorded → optimized\" (ad_tape_nops before and after ad_tape_optimize). "
  "\"record + optimize\" runs ad_tape_optimize right after recording; \"record + 1st gradient\" is a fresh tape's first gradient "
  "(the optimizer runs lazily inside it unless HYPERAD_OPTIMIZE=0). "
  "\"HVP, 10 per x\": the Newton-CG pattern, 10 HVPs at one point then the other point, time per HVP.")
w("")
w("## Median times (min–max over the batches)")
w("")
w("f is timed at the start and at the end of each case's process; the ratios above use the lower median.")
w("")
w("| case | tool | f | " + " | ".join(mhead) + " |")
w("|---|---|---|" + "---|" * len(mhead))
for k in keys:
    r = res.get(k, {})
    first = True
    for tool, name in (("plain", "plain f"), ("hand", "hand-coded"), ("hyperad", "hyperad"), ("adolc", "ADOL-C")):
        if tool not in r:
            continue
        cells = []
        for mm in ["f"] + metrics:
            v = r[tool].get(mm)
            c = f"{ft(v[0])} ({ft(v[1])}–{ft(v[2])})" if v and v[0] == v[0] else "–"
            e = r[tool].get("f_end") if mm == "f" else None
            if e and e[0] == e[0]:
                c = f"start {c}; end {ft(e[0])} ({ft(e[1])}–{ft(e[2])})"
            cells.append(c)
        w(f"| {label(k) if first else ''} | {name} | " + " | ".join(cells) + " |")
        first = False
w("")
w("## Issue 9 bars at Rosenbrock n = 10⁶ (hyperad faster than ADOL-C, same run)")
w("")
k = ("rosen", 1000000)
r = res.get(k, {})
if "hyperad" in r and "adolc" in r:
    w("| driver | bar | hyperad | ADOL-C | speed-up | |")
    w("|---|---|---|---|---|---|")
    for mm, bar, nm in (("record", 2.0, "record"), ("gradient", 1.3, "gradient"),
                        ("hvp_newx", 2.0, "HVP (new x)"), ("hvp_samex", 2.0, "HVP (same x)"),
                        ("hvp_cg10", 2.0, "HVP (10 per x)")):
        a, h = r["adolc"].get(mm), r["hyperad"].get(mm)
        if a and h and h[0] > 0 and a[0] == a[0] and h[0] == h[0]:
            s = a[0] / h[0]
            w(f"| {nm} | ≥ {bar}× | {ft(h[0])} ({fx(ratio(k, 'hyperad', mm))} f) | {ft(a[0])} ({fx(ratio(k, 'adolc', mm))} f) | {s:.2f}× | {'met' if s >= bar else '**MISSED**'} |")
        else:
            w(f"| {nm} | ≥ {bar}× | – | – | – | not measured |")
else:
    w("(not measured in this run)")
w("")
if bad:
    w("## Failures and wrong results")
    w("")
    for b in bad:
        w(f"- {b}")
    w("")
print("\n".join(out))
sys.exit(1 if bad or E.get("BENCH_STATUS") != "0" else 0)
PYEOF
cat "$report"

# --update-results: put the report between the markers of benchmarks/RESULTS.md
# (headings one level down); the hand-written text around them stays.
if [ -n "$update" ]; then
  python3 - "$report" "$here/RESULTS.md" <<'PYEOF' || status=1
import sys
rep, res = sys.argv[1], sys.argv[2]
begin, end = "<!-- BEGIN run_ad.sh report -->", "<!-- END run_ad.sh report -->"
body = "".join(("#" + l) if l.startswith("#") else l for l in open(rep))
text = open(res).read()
i, j = text.find(begin), text.find(end)
if i < 0 or j < i:
    sys.exit(f"run_ad.sh: {res} has no {begin} ... {end} block")
open(res, "w").write(text[:i + len(begin)] + "\n" + body + text[j:])
print(f"run_ad.sh: updated {res}", file=sys.stderr)
PYEOF
fi
exit $status
