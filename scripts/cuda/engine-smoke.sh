# Engine paths on a device: generate (both backends), optimal sampling, speculative decoding
# (draft model, n-gram, early exit), soft sampling and the server, on a random model written there.
# Usage: engine-smoke.sh ADASAMP_BINARY DEVICE PRESET VOCAB   (e.g. /tmp/adasamp cuda 1b 49152)
set -u
A=$1; DEV=$2; P=$3; V=$4; W=/tmp/smoke; mkdir -p $W
$A model random --arch llama --preset $P --vocab $V --format gguf --weights q8_0 --out $W/r.gguf > /dev/null || exit 1
G="$A generate --model $W/r.gguf --device $DEV --raw --prompt 'The quick brown fox' --max-new-tokens 24 --seed 3"
run() { echo "== $1"; shift; eval "$@" 2> $W/err > $W/out; rc=$?; grep -E "backend|drafter|accept|α|alpha|soft" $W/err | head -3; echo "rc=$rc tokens_out=$(wc -c < $W/out)B"; [ $rc = 0 ] || tail -3 $W/err; }
run "llama.cpp greedy" "$G --greedy"; cp $W/out $W/plain_l
run "candle greedy" "$G --greedy --backend candle"; cp $W/out $W/plain_c
run "optimal (teacher = same model, entropy)" "$G --temperature 0.8 --teacher $W/r.gguf --alpha-method entropy"
run "speculative draft model, greedy" "$G --greedy --draft $W/r.gguf --draft-tokens 4"; cmp -s $W/out $W/plain_l && echo "  == plain greedy (llama.cpp)" || echo "  DIFFERS from plain greedy"
run "speculative n-gram, greedy" "$G --greedy --draft-ngram 2"; cmp -s $W/out $W/plain_l && echo "  == plain greedy (llama.cpp)" || echo "  DIFFERS from plain greedy"
run "speculative early exit (candle), greedy" "$G --greedy --backend candle --draft-layers 4"; cmp -s $W/out $W/plain_c && echo "  == plain greedy (candle)" || echo "  DIFFERS from plain greedy"
run "soft sampling (llama.cpp)" "$G --temperature 0.8 --soft"
echo "== serve"
$A serve --model $W/r.gguf --device $DEV --port 8199 > $W/serve.log 2>&1 &
S=$!; for i in $(seq 1 60); do curl -s localhost:8199/v1/models > /dev/null 2>&1 && break; sleep 0.5; done
curl -s localhost:8199/v1/completions -H 'content-type: application/json' -d '{"model":"x","prompt":"The quick brown fox","max_tokens":16,"temperature":0}' | head -c 300; echo
kill $S; wait $S 2>/dev/null; grep -E "device|cuda|listening" $W/serve.log | head -3
