#!/usr/bin/env bash
# Installs what building and running adasamp needs besides the Rust toolchain, if missing:
# python3 + pip (fetches the default model once), and for the llama.cpp backend (built from
# source by the llama-cpp-sys-2 crate) a C++ compiler, cmake and libclang (bindgen).
# Idempotent and quick when everything is present. Debian/Ubuntu packages via apt-get;
# elsewhere it names what to install and exits 1.
set -euo pipefail

missing=()
command -v cargo >/dev/null 2>&1 || {
    echo "setup: cargo not found: install a stable Rust toolchain (rustup) first" >&2
    exit 1
}
{ command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; } \
    || missing+=(python3 python3-pip)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
if [ -z "${LIBCLANG_PATH:-}" ] \
    && ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
    missing+=(libclang-dev)
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: please install: ${missing[*]} (Debian package names; set LIBCLANG_PATH if" \
        "libclang lives elsewhere)" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "setup: not root and no sudo: please install ${missing[*]}" >&2
        exit 1
    }
    sudo="sudo"
fi
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
