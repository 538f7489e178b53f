# TEST FIXTURE, not a benchmark: stands in for benches/reference/gpu_sampler.py in adasamp-cli's
# tests, which run without PyTorch or a GPU (`sh pytorch_reference_fixture.sh <gpu_sampler.py's
# arguments>`). It prints one JSON object of gpu_sampler.py's schema whose figures are fixed
# functions of the arguments, so that a test can tell that the arguments arrived:
# forward_ms: bf16_compiled = batch + 0.5, fp32_eager = 10 * batch;
# train_positions_per_s: bf16_compiled = 4 * positions, fp32_eager = positions.
config='{}'; fv=''; batches=''; tv=''; tp=''
while [ $# -gt 0 ]; do
  case "$1" in
    --config-json) config="$2"; shift 2 ;;
    --forward-vocab) fv="$2"; shift 2 ;;
    --batches) batches="$2"; shift 2 ;;
    --train-vocab) tv="$2"; shift 2 ;;
    --train-positions) tp="$2"; shift 2 ;;
    --iters) shift 2 ;;
    *) echo "fixture: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$fv" ] || [ -z "$batches" ] || [ -z "$tv" ] || [ -z "$tp" ]; then
  echo "fixture: --forward-vocab, --batches, --train-vocab and --train-positions are required" >&2
  exit 2
fi
bf16=''; fp32=''
for b in $(echo "$batches" | tr ',' ' '); do
  bf16="$bf16${bf16:+, }\"$b\": $b.5"
  fp32="$fp32${fp32:+, }\"$b\": $((10 * b))"
done
echo "fixture: forward V=$fv batches=$batches, train V=$tv positions=$tp" >&2
printf '{"device": "fixture (no GPU)", "torch": "0.0-fixture", "config": %s, "forward_vocab": %s, "forward_ms": {"fp32_eager": {%s}, "bf16_compiled": {%s}}, "train_vocab": %s, "train_positions": %s, "train_positions_per_s": {"fp32_eager": %s, "bf16_compiled": %s}}\n' \
  "$config" "$fv" "$fp32" "$bf16" "$tv" "$tp" "$tp" "$((4 * tp))"
