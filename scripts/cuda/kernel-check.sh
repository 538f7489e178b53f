# On a GPU machine (CUDA 13 runtime, PyTorch for the reference), from the repository root: runs
# the fused learned-sampler kernels' equivalence tests and benchmarks carried in DIR (made by
# kernel-binaries.sh) and the PyTorch reference in the same call, writing small text logs to
# LOG_DIR, and packs them into LOG_DIR.tar.xz (one file: a device call returns only a few files,
# so keep LOG_DIR outside the returned folder and the tarball inside it, e.g. /tmp/logs with
# `cp /tmp/logs.tar.xz $OUT/`). Exit status: 1 if any test binary failed, else 0.
# Usage: kernel-check.sh DIR LOG_DIR [ITERS] [REPEATS]
#   ITERS: gpu_bench iterations (default 5); REPEATS: extra fresh-seed runs of the every-shape
#   tests (default 0).
set -u
DIR=$1; LOG=$2; ITERS=${3:-5}; REPEATS=${4:-0}
rm -rf "$LOG"; mkdir -p "$LOG"  # no stale logs from an earlier call on the same machine
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/targets/x86_64-linux/lib:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
for f in "$DIR"/*.xz; do xz -dkf "$f"; chmod +x "${f%.xz}"; done
built=$(cat "$DIR/build-path")
if [ "$built" != "$PWD" ]; then mkdir -p "$(dirname "$built")"; ln -sfn "$PWD" "$built"; fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv,noheader > "$LOG/gpu.txt"
failed=0
for t in gpu_fused gpu_fused_training gpu_fused_optimizer; do
  "$DIR/$t" --nocapture --test-threads 1 --include-ignored > "$LOG/$t.log" 2>&1 || failed=1
  grep -E "^test |test result" "$LOG/$t.log" | tail -12
done
for i in $(seq 1 "$REPEATS"); do
  "$DIR/gpu_fused_training" --nocapture --test-threads 1 every_compiled_shape groups_equal_f16 > "$LOG/repeat-train-$i.log" 2>&1 || failed=1
  "$DIR/gpu_fused" --nocapture --test-threads 1 --include-ignored soft_masked > "$LOG/repeat-soft-$i.log" 2>&1
  grep -h "test result" "$LOG/repeat-train-$i.log" "$LOG/repeat-soft-$i.log"
done
"$DIR/gpu_bench" configs/samplers/sampling_network.yaml "$ITERS" > "$LOG/gpu_bench.md" 2>&1 || failed=1
cat "$LOG/gpu_bench.md"
(cd benches/reference && python3 gpu_sampler.py --iters "$ITERS") > "$LOG/pytorch.txt" 2>&1
tail -20 "$LOG/pytorch.txt"
tar -cJf "$LOG.tar.xz" -C "$LOG" .
exit $failed
