# On a GPU machine, from the repository root: checks a candidate build of the fused
# learned-sampler kernels and times it against a baseline build in the same call. Both folders
# are made by kernel-binaries.sh. Runs kernel-check.sh on CANDIDATE (every test, REPEATS fresh-seed
# repeats, gpu_bench, the PyTorch reference), then `gpu_bench ITERS` of BASELINE and CANDIDATE
# alternated ROUNDS times (forward rows, training rows and the phase table of each), and packs
# every log into LOG_DIR.tar.xz (keep LOG_DIR outside the returned folder, copy the tarball in).
# Exit status: kernel-check.sh's.
# Usage: kernel-ab.sh BASELINE CANDIDATE LOG_DIR [ITERS] [REPEATS] [ROUNDS]
set -u
BASE=$1; CAND=$2; LOG=$3; ITERS=${4:-5}; REPEATS=${5:-2}; ROUNDS=${6:-2}
here=$(dirname "$0")
rm -rf "$LOG"; mkdir -p "$LOG"  # no stale logs from an earlier call on the same machine
bash "$here/kernel-check.sh" "$CAND" "$LOG/candidate" "$ITERS" "$REPEATS"
status=$?
for f in "$BASE"/*.xz; do xz -dkf "$f"; chmod +x "${f%.xz}"; done
built=$(cat "$BASE/build-path")
if [ "$built" != "$PWD" ]; then mkdir -p "$(dirname "$built")"; ln -sfn "$PWD" "$built"; fi
for i in $(seq 1 "$ROUNDS"); do
  for side in BASE CAND; do
    dir=${!side}
    echo "== $side ($dir) round $i" >> "$LOG/ab.md"
    "$dir/gpu_bench" configs/samplers/sampling_network.yaml "$ITERS" >> "$LOG/ab.md" 2>&1
  done
done
grep -E "^==|forward|training step|packing|block backward|forward: " "$LOG/ab.md"
tar -cJf "$LOG.tar.xz" -C "$LOG" .
exit $status
