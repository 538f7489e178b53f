# Builds (here, with the CUDA toolchain) the release binaries that check and measure the fused
# learned-sampler kernels on a GPU machine, stripped and xz-compressed into one folder to carry:
# the GPU equivalence tests (gpu_fused, gpu_fused_training, gpu_fused_optimizer) and the nets
# example gpu_bench. Also records this checkout's path (the test binaries find configs/ through
# their build-time path; kernel-check.sh links it on the GPU machine).
# Usage: kernel-binaries.sh OUT_DIR [TARGET_DIR]      (e.g. gpu-check target/cuda)
set -eu -o pipefail
OUT=$1; TARGET=${2:-target/cuda}
mkdir -p "$OUT"
export CARGO_TARGET_DIR=$TARGET
cargo build -p adasamp-nets --features cuda --release --example gpu_bench
for t in gpu_fused gpu_fused_training gpu_fused_optimizer; do
  bin=$(cargo test -p adasamp-nets --features cuda --release --test $t --no-run --message-format=json \
    | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
  strip -o "$OUT/$t" "$bin"
done
strip -o "$OUT/gpu_bench" "$TARGET/release/examples/gpu_bench"
for f in gpu_fused gpu_fused_training gpu_fused_optimizer gpu_bench; do xz -T2 -6 -f "$OUT/$f"; done
pwd > "$OUT/build-path"
du -sh "$OUT"
