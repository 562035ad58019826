#!/bin/bash
# hyperad-logreg against LIBLINEAR's `train -s 0` (Debian's liblinear-tools),
# at equal -c and -e, on the bundled breast-cancer data and two synthetic sets
# generated here from fixed seeds (benchmarks/data/, git-ignored):
#   dense  100000 x 100, every entry written        (~113 MB of LIBSVM text)
#   sparse  50000 x 20000, 50 non-zeros per row     (~37 MB)
# Per case: whole-command time (hyperfine: mean ± sd and min over RUNS runs
# after a warm-up), Newton and CG iterations, final objective of both models
# evaluated by the same code (`hyperad-logreg objective`), training accuracy,
# peak RSS (/usr/bin/time -v), and our in-memory data size.
#
#   benchmarks/bench_logreg.sh [build_dir]       (default: build)
#   RUNS=10 benchmarks/bench_logreg.sh build-lr
#
# Default malloc settings (no MALLOC_* variables): both programs run as users
# run them.  Results go to stdout and benchmarks/results_logreg.md (or $OUT).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
ours=$build/examples/hyperad-logreg
ll_train=${LIBLINEAR_TRAIN:-liblinear-train}
runs=${RUNS:-5}
data=$here/data
out=${OUT:-$here/results_logreg.md}

for tool in "$ours" "$ll_train" hyperfine /usr/bin/time python3 cc; do
    command -v "$tool" >/dev/null || { echo "bench_logreg: $tool not found" >&2; exit 1; }
done

mkdir -p "$data"
gen=$data/gen_logreg_data
if [ ! -x "$gen" ] || [ "$here/gen_logreg_data.c" -nt "$gen" ]; then
    cc -O2 -o "$gen" "$here/gen_logreg_data.c" -lm
fi
dense=$data/dense_100000x100.svm
sparse=$data/sparse_50000x20000.svm
[ -s "$dense" ] || "$gen" dense 100000 100 1 > "$dense"
[ -s "$sparse" ] || "$gen" sparse 50000 20000 50 2 > "$sparse"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

{
echo "# hyperad-logreg vs liblinear-train -s 0"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r); liblinear-tools $(dpkg-query -W -f '${Version}' liblinear-tools 2>/dev/null || echo '?');"
echo "hyperfine: $runs runs after 1 warm-up, whole commands (read + train + write model)."
echo "Objective and accuracy of both models are computed by \`hyperad-logreg objective\`."
echo "Data size: our in-memory arrays (dense 8·m·n + 8·m; sparse 12·nnz + 16·m bytes)."
echo
echo "| data | -c | -e | tool | time mean ± sd (min) [s] | ratio | Newton | CG | objective | rel. diff | train acc. | peak RSS [MB] | RSS / data |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} | tee "$out"

bench() { # name file C eps [extra options of hyperad-logreg]
    local name=$1 file=$2 c=$3 e=$4 x=${5:-}
    local om=$tmp/ours.model lm=$tmp/ll.model
    hyperfine -N --warmup 1 --runs "$runs" --export-json "$tmp/hf.json" \
        "$ours train -q $x -c $c -e $e $file $om" \
        "$ll_train -s 0 -q -c $c -e $e $file $lm" >/dev/null 2>&1 ||
    hyperfine --warmup 1 --runs "$runs" --export-json "$tmp/hf.json" \
        "$ours train -q $x -c $c -e $e $file $om" \
        "$ll_train -s 0 -q -c $c -e $e $file $lm" >/dev/null
    # iterations: our summary line; LIBLINEAR's "iter N ... CG k" lines
    "$ours" train $x -c "$c" -e "$e" "$file" "$om" >"$tmp/ours.out" 2>"$tmp/ours.err"
    "$ll_train" -s 0 -c "$c" -e "$e" "$file" "$lm" >"$tmp/ll.out" 2>&1
    /usr/bin/time -v "$ours" train -q $x -c "$c" -e "$e" "$file" "$om" >/dev/null 2>"$tmp/ours.time"
    /usr/bin/time -v "$ll_train" -s 0 -q -c "$c" -e "$e" "$file" "$lm" >/dev/null 2>"$tmp/ll.time"
    "$ours" objective -c "$c" "$file" "$om" >"$tmp/ours.obj"
    "$ours" objective -c "$c" "$file" "$lm" >"$tmp/ll.obj"
    python3 - "$name" "$c" "$e" "$tmp" "$x" <<'EOF' | tee -a "$out"
import json, re, sys
name, c, e, tmp, extra = sys.argv[1:6]
hf = json.load(open(f"{tmp}/hf.json"))["results"]
def rd(p): return open(f"{tmp}/{p}").read()
def rss(p): return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", rd(p)).group(1)) / 1024
def obj(p):
    m = re.search(r"objective (\S+)\s+accuracy (\S+)", rd(p))
    return float(m.group(1)), m.group(2)
o = rd("ours.out")
on = int(re.search(r"Newton (\d+)", o).group(1)); oc = int(re.search(r"CG (\d+)", o).group(1))
ll = [l for l in rd("ll.out").splitlines() if l.startswith("iter")]
ln = len(ll); lc = sum(int(re.search(r"CG\s+(\d+)", l).group(1)) for l in ll)
m = re.search(r"(\d+) rows, (\d+) features, (\d+) entries \((\w+)\)", rd("ours.err"))
rows, feats, nnz, kind = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
size = (8 * rows * feats + 8 * rows) if kind == "dense" else (12 * nnz + 16 * rows)
size /= 1024 * 1024
fo, ao = obj("ours.obj"); fl, al = obj("ll.obj")
to, tl = hf[0], hf[1]
ours_name = "hyperad-logreg" + (f" {extra}" if extra else "")
for tool, t, n, cg, f, a, r in ((ours_name, to, on, oc, fo, ao, rss("ours.time")),
                                 ("liblinear-train", tl, ln, lc, fl, al, rss("ll.time"))):
    ratio = t["mean"] / tl["mean"]
    print(f"| {name} ({kind}) | {c} | {e} | {tool} | {t['mean']:.3f} ± {t['stddev']:.3f} ({t['min']:.3f}) | "
          f"{ratio:.2f} | {n} | {cg} | {f:.10g} | {(f - fl) / fl:+.1e} | {a} | {r:.1f} | {r / size:.2f} |")
EOF
}

bench breast_cancer "$root/data/breast_cancer.svm" 1 0.01
bench breast_cancer "$root/data/breast_cancer.svm" 1 0.01 "-g ls"
bench breast_cancer "$root/data/breast_cancer.svm" 1 0.0001
bench dense_100000x100 "$dense" 1 0.01
bench dense_100000x100 "$dense" 1 0.0001
bench sparse_50000x20000 "$sparse" 1 0.01
bench sparse_50000x20000 "$sparse" 1 0.0001
