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
#   MAX_TOKENS   [64]   TEMPERATURE [0.8]   PROMPTS  a prompts file (bench-serve --prompts)
#                [bench-serve's eight short instructions]
#   SAMPLING     JSON fields sent to both ['{"top_k":40,"top_p":0.95,"min_p":0.05}']
#   LLAMA_EXTRA  JSON fields only for llama-server ['{"ignore_eos":true}': every request runs to
#                MAX_TOKENS]
#   ADASAMP_EXTRA JSON fields only for adasamp ['{"min_tokens":MAX_TOKENS}': the same]
#   LLAMA_PORT [18081]  ADASAMP_PORT [18082]  OUT (results folder) [target/serve-compare]
#   ADASAMP_BIN  an adasamp binary to measure [built here: cargo build --release]
#   ADASAMP_SERVE_ARGS  further `adasamp serve` flags
#   BASELINE_BIN an older adasamp binary, measured in the same turns as `adasamp-baseline`
#                (A/B of a change) [none]   BASELINE_SERVE_ARGS  its `serve` flags [none]
#   NATIVE       1 = also build adasamp with RUSTFLAGS="-C target-cpu=native" (llama-cpp-sys-2 then
#                builds llama.cpp with GGML_NATIVE=ON, as llama-server is built) into
#                $NATIVE_TARGET_DIR [target/native] and measure it in the same turns as
#                `adasamp-native` [0]   NATIVE_BIN  such a binary, built already [none]
#   SKIP_LLAMA   1 = do not run llama-server [0]
#   QUIET        before each level, wait (up to QUIET_WAIT seconds [600]) until the CPUs were
#                at least this % idle over 3 s, i.e. other work is off the machine [0 = no wait]
#   FOREIGN_MAX  a level during which other processes (and the hypervisor's steal) took more
#                than this % of the CPUs is measured again, up to TRIES times [3]; [100 = never]
#                Each level's foreign CPU % is logged and kept beside its JSON (.load).
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
rm -f "$out"/*.json "$out"/*.md "$out"/*.load

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
native="${NATIVE_BIN:-}"
if [ -z "$native" ] && [ "${NATIVE:-0}" = 1 ]; then
    native_dir="${NATIVE_TARGET_DIR:-target/native}"
    log "building adasamp (release, target-cpu=native) into $native_dir"
    RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR="$native_dir" cargo build --release -q -p adasamp-cli
    native="$native_dir/release/adasamp"
fi
labels=()
[ "${SKIP_LLAMA:-0}" = 1 ] || { llama_bin=$(benches/peers/llama-server.sh | tail -n 1); labels+=(llama-server); }
labels+=(adasamp)
[ -z "$native" ] || labels+=(adasamp-native)
[ -z "${BASELINE_BIN:-}" ] || labels+=(adasamp-baseline)

hz=$(getconf CLK_TCK)
ncpu=$(nproc)

# % of CPU time idle over the next 3 seconds (from /proc/stat).
idle_pct() {
    local a b
    read -r -a a < <(head -n 1 /proc/stat)
    sleep 3
    read -r -a b < <(head -n 1 /proc/stat)
    python3 -c 'import sys; a=list(map(int,sys.argv[1].split())); b=list(map(int,sys.argv[2].split())); d=[y-x for x,y in zip(a,b)]; print(round(100*(d[3]+d[4])/max(1,sum(d))))' "${a[*]:1}" "${b[*]:1}"
}

# Waits for QUIET % idle CPUs (see above).
wait_quiet() {
    local waited=0
    [ "${QUIET:-0}" -gt 0 ] || return 0
    while [ "$(idle_pct)" -lt "$QUIET" ] && [ "$waited" -lt "${QUIET_WAIT:-600}" ]; do
        sleep 2
        waited=$((waited + 5))
    done
}

# CPU seconds busy on the whole machine so far (user, nice, system, irq, softirq, steal).
busy_s() { head -n 1 /proc/stat | awk -v hz="$hz" '{print ($2+$3+$4+$7+$8+$9)/hz}'; }
# CPU seconds process $1 (all its threads) has used so far.
proc_s() { awk -v hz="$hz" '{print ($14+$15)/hz}' "/proc/$1/stat"; }

# One level of server `label` (listening on `port`, its pid in $pid): bench-serve with `clients`
# clients, measured again while other processes took more than FOREIGN_MAX % of the CPUs.
level() {
    local port=$1 label=$2 extra=$3 round=$4 clients=$5 try b0 s0 t0 b1 s1 t1 client foreign
    local json="$out/$label.r$round.c$clients.json"
    for try in $(seq 1 "${TRIES:-3}"); do
        wait_quiet
        b0=$(busy_s); s0=$(proc_s "$pid"); t0=$(date +%s.%N)
        client=$(/usr/bin/time -f "%U %S" -o /dev/stdout "$adasamp" bench-serve \
            --url "http://127.0.0.1:$port" --label "$label" --endpoint chat \
            --concurrency "$clients" --duration "$duration" --max-tokens "$max_tokens" \
            --temperature "$temperature" --extra "$(merge "$sampling" "$extra")" \
            ${PROMPTS:+--prompts "$PROMPTS"} --json "$json" 2>"$out/bench.err" | tee "$out/level.md" | tail -n 1)
        b1=$(busy_s); s1=$(proc_s "$pid"); t1=$(date +%s.%N)
        foreign=$(python3 -c 'import sys; b0,b1,s0,s1,t0,t1,n=map(float,sys.argv[1:8]); u,s=map(float,sys.argv[8].split()); print(round(max(0.0,100*((b1-b0)-(s1-s0)-(u+s))/((t1-t0)*n))))' \
            "$b0" "$b1" "$s0" "$s1" "$t0" "$t1" "$ncpu" "$client")
        grep '^|' "$out/level.md" | grep -v -e '^| server' -e '^|---' | sed "s/|\$/| ${foreign} % |/" >>"$out/$label.md"
        log "round $round: $label, $clients client(s): other processes took ${foreign} % of the CPUs (try $try)"
        echo "$foreign" >"$out/$label.r$round.c$clients.load"
        [ "$foreign" -gt "${FOREIGN_MAX:-100}" ] || return 0
    done
}

# Starts server `label`, runs every level against it, stops it.
measure() {
    local label=$1 round=$2 port extra c
    case "$label" in
    llama-server)
        log "round $round: llama-server ($llama_bin/llama-server), -np 8, $threads threads"
        "$llama_bin/llama-server" -m "$model" --host 127.0.0.1 --port "$llama_port" -np 8 -cb \
            -t "$threads" -tb "$threads" -c 8192 >"$out/llama-server.log" 2>&1 &
        port=$llama_port extra=$llama_extra
        ;;
    adasamp)
        log "round $round: adasamp serve ($adasamp), --max-running 8, $threads threads"
        # shellcheck disable=SC2086 # ADASAMP_SERVE_ARGS is a list of flags
        "$adasamp" serve --model "$model" --host 127.0.0.1 --port "$adasamp_port" \
            --max-running 8 --threads "$threads" ${ADASAMP_SERVE_ARGS:-} >"$out/adasamp.log" 2>&1 &
        port=$adasamp_port extra=$adasamp_extra
        ;;
    adasamp-native)
        log "round $round: adasamp serve, native build ($native), --max-running 8, $threads threads"
        # shellcheck disable=SC2086 # ADASAMP_SERVE_ARGS is a list of flags
        "$native" serve --model "$model" --host 127.0.0.1 --port "$adasamp_port" \
            --max-running 8 --threads "$threads" ${ADASAMP_SERVE_ARGS:-} >"$out/adasamp-native.log" 2>&1 &
        port=$adasamp_port extra=$adasamp_extra
        ;;
    adasamp-baseline)
        log "round $round: baseline adasamp serve ($BASELINE_BIN), --max-running 8"
        # shellcheck disable=SC2086 # BASELINE_SERVE_ARGS is a list of flags
        "$BASELINE_BIN" serve --model "$model" --host 127.0.0.1 --port "$adasamp_port" \
            --max-running 8 ${BASELINE_SERVE_ARGS:-} >"$out/adasamp-baseline.log" 2>&1 &
        port=$adasamp_port extra=$adasamp_extra
        ;;
    esac
    pid=$!
    wait_ready "$port" "$label"
    for c in ${concurrency//,/ }; do
        level "$port" "$label" "$extra" "$round" "$c"
    done
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
echo "| server | clients | requests | errors | req/s | gen tok/s | TTFT p50 | TTFT p99 | ITL p50 | ITL p99 | latency p50 | other CPU use |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for label in "${labels[@]}"; do
    cat "$out/$label.md"
done
echo
python3 benches/peers/serve-summary.py "$out" "${labels[@]}"
log "JSON results and server logs in $out"
