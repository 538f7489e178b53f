#!/usr/bin/env bash
# Serving side by side: llama.cpp's `llama-server` (continuous batching, 8 slots) and
# `adasamp serve` (release build) on loopback ports, the same model file and the same
# `adasamp bench-serve` load (chat completions, 1 and 8 clients, 64 tokens, temperature 0.8, the
# same top_k/top_p/min_p chain sent to both). Each server runs alone on the cores while it is
# measured, then is stopped. With ROUNDS > 1 the servers take turns (the order rotates every
# round), so a noisy machine slows them alike; a summary gives each server's median over the
# rounds and the per-round ratios. Not run in CI.
#
# Environment (defaults in brackets):
#   MODEL        GGUF file [the default model in $ADASAMP_HOME or ~/.cache/adasamp]
#   THREADS      CPU threads of each server [2]
#   CONCURRENCY  bench-serve levels [1,8]       DURATION  seconds per level [30]
#   ROUNDS       times each server is measured, in turns [1]
#   MAX_TOKENS   [64]   TEMPERATURE [0.8]
#   SAMPLING     JSON fields sent to both ['{"top_k":40,"top_p":0.95,"min_p":0.05}']
#   LLAMA_EXTRA  JSON fields only for llama-server ['{"ignore_eos":true}': every request runs to
#                MAX_TOKENS]
#   ADASAMP_EXTRA JSON fields only for adasamp ['{"min_tokens":MAX_TOKENS}': the same]
#   LLAMA_PORT [18081]  ADASAMP_PORT [18082]  OUT (results folder) [target/serve-compare]
#   ADASAMP_BIN  an adasamp binary to measure [built here: cargo build --release]
#   ADASAMP_SERVE_ARGS  further `adasamp serve` flags
#   BASELINE_BIN an older adasamp binary, measured in the same turns as `adasamp-baseline`
#                (A/B of a change) [none]   BASELINE_SERVE_ARGS  its `serve` flags [none]
#   SKIP_LLAMA   1 = do not run llama-server [0]
#   QUIET        before each server's turn, wait (up to QUIET_WAIT seconds [600]) until the CPUs
#                were at least this % idle over 3 s, i.e. other work is off the machine [0 = no
#                wait]; the idle % seen is logged with each turn
set -euo pipefail
cd "$(dirname "$0")/../.."

model="${MODEL:-${ADASAMP_HOME:-$HOME/.cache/adasamp}/SmolLM2-135M-Instruct.Q4_1.gguf}"
threads="${THREADS:-2}"
concurrency="${CONCURRENCY:-1,8}"
duration="${DURATION:-30}"
rounds="${ROUNDS:-1}"
max_tokens="${MAX_TOKENS:-64}"
temperature="${TEMPERATURE:-0.8}"
sampling="${SAMPLING:-{\"top_k\":40,\"top_p\":0.95,\"min_p\":0.05\}}"
llama_extra="${LLAMA_EXTRA:-{\"ignore_eos\":true\}}"
adasamp_extra="${ADASAMP_EXTRA:-{\"min_tokens\":$max_tokens\}}"
llama_port="${LLAMA_PORT:-18081}"
adasamp_port="${ADASAMP_PORT:-18082}"
out="${OUT:-target/serve-compare}"

log() { echo "serve-compare: $*" >&2; }

[ -f "$model" ] || { log "model $model not found (cargo run -p adasamp-cli -- model fetch)"; exit 1; }
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.md

# Merges JSON objects (later fields win).
merge() { python3 -c 'import json,sys; d={}; [d.update(json.loads(a)) for a in sys.argv[1:]]; print(json.dumps(d))' "$@"; }

pid=""
stop_server() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    pid=""
}
trap stop_server EXIT INT TERM

# Waits until GET /health answers 200 (up to 120 s), or the server process dies.
wait_ready() {
    local port=$1 name=$2
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || { log "$name exited during start-up (log: $out/$name.log)"; exit 1; }
        if curl -sf -o /dev/null "http://127.0.0.1:$port/health"; then return 0; fi
        sleep 0.2
    done
    log "$name not ready after 120 s (log: $out/$name.log)"
    exit 1
}

if [ -n "${ADASAMP_BIN:-}" ]; then
    adasamp="$ADASAMP_BIN"
else
    log "building adasamp (release)"
    cargo build --release -q -p adasamp-cli
    adasamp="${CARGO_TARGET_DIR:-target}/release/adasamp"
fi
labels=()
[ "${SKIP_LLAMA:-0}" = 1 ] || { llama_bin=$(benches/peers/llama-server.sh | tail -n 1); labels+=(llama-server); }
labels+=(adasamp)
[ -z "${BASELINE_BIN:-}" ] || labels+=(adasamp-baseline)

# % of CPU time idle over the next 3 seconds (from /proc/stat).
idle_pct() {
    local a b
    read -r -a a < <(head -n 1 /proc/stat)
    sleep 3
    read -r -a b < <(head -n 1 /proc/stat)
    python3 -c 'import sys; a=list(map(int,sys.argv[1].split())); b=list(map(int,sys.argv[2].split())); d=[y-x for x,y in zip(a,b)]; print(round(100*(d[3]+d[4])/max(1,sum(d))))' "${a[*]:1}" "${b[*]:1}"
}

# Waits for QUIET % idle CPUs (see above); prints the idle % last seen.
wait_quiet() {
    local idle waited=0
    idle=$(idle_pct)
    while [ "${QUIET:-0}" -gt 0 ] && [ "$idle" -lt "${QUIET:-0}" ] && [ "$waited" -lt "${QUIET_WAIT:-600}" ]; do
        sleep 2
        waited=$((waited + 5))
        idle=$(idle_pct)
    done
    echo "$idle"
}

bench() {
    local port=$1 label=$2 extra=$3 round=$4
    "$adasamp" bench-serve --url "http://127.0.0.1:$port" --label "$label" --endpoint chat \
        --concurrency "$concurrency" --duration "$duration" --max-tokens "$max_tokens" \
        --temperature "$temperature" --extra "$(merge "$sampling" "$extra")" \
        --json "$out/$label.r$round.json" | tee -a "$out/$label.md"
}

# Starts server `label`, loads it, stops it.
measure() {
    local label=$1 round=$2 idle
    idle=$(wait_quiet)
    log "round $round: $label: CPUs ${idle}% idle before the turn"
    echo "round $round: CPUs ${idle}% idle before the turn" >>"$out/$label.md"
    case "$label" in
    llama-server)
        log "round $round: llama-server ($llama_bin/llama-server), -np 8, $threads threads"
        "$llama_bin/llama-server" -m "$model" --host 127.0.0.1 --port "$llama_port" -np 8 -cb \
            -t "$threads" -tb "$threads" -c 8192 >"$out/llama-server.log" 2>&1 &
        pid=$!
        wait_ready "$llama_port" llama-server
        bench "$llama_port" llama-server "$llama_extra" "$round"
        ;;
    adasamp)
        log "round $round: adasamp serve ($adasamp), --max-running 8, $threads threads"
        # shellcheck disable=SC2086 # ADASAMP_SERVE_ARGS is a list of flags
        "$adasamp" serve --model "$model" --host 127.0.0.1 --port "$adasamp_port" \
            --max-running 8 --threads "$threads" ${ADASAMP_SERVE_ARGS:-} >"$out/adasamp.log" 2>&1 &
        pid=$!
        wait_ready "$adasamp_port" adasamp
        bench "$adasamp_port" adasamp "$adasamp_extra" "$round"
        ;;
    adasamp-baseline)
        log "round $round: baseline adasamp serve ($BASELINE_BIN), --max-running 8"
        # shellcheck disable=SC2086 # BASELINE_SERVE_ARGS is a list of flags
        "$BASELINE_BIN" serve --model "$model" --host 127.0.0.1 --port "$adasamp_port" \
            --max-running 8 ${BASELINE_SERVE_ARGS:-} >"$out/adasamp-baseline.log" 2>&1 &
        pid=$!
        wait_ready "$adasamp_port" adasamp-baseline
        bench "$adasamp_port" adasamp-baseline "$adasamp_extra" "$round"
        ;;
    esac
    stop_server
}

n=${#labels[@]}
for round in $(seq 1 "$rounds"); do
    for k in $(seq 0 $((n - 1))); do
        measure "${labels[$(((k + round - 1) % n))]}" "$round"
    done
done

echo
echo "## Serving, $(date -u +%Y-%m-%d), $(nproc) cores, $(basename "$model"), chat, $max_tokens tokens, T $temperature, $threads threads each, $rounds round(s)"
echo
for label in "${labels[@]}"; do
    cat "$out/$label.md"
    echo
done
python3 benches/peers/serve-summary.py "$out" "${labels[@]}"
log "JSON results and server logs in $out"
