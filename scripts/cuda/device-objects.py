#!/usr/bin/env python3
"""Compile llama.cpp's CUDA objects on a GPU machine instead of this 2-core build machine.

llama-cpp-sys-2's cmake build of ggml-cuda is ~144 nvcc objects (about one a minute here); a
16-core GPU machine compiles them in ~3 minutes. The build directory keeps this machine's absolute
paths, so the GPU machine recreates them (the llama.cpp sources and the build directory's
CMakeFiles at the same paths, the toolkit behind the same nvcc path) and runs the commands of
compile_commands.json; the objects come back, get a fresh mtime, and `cargo build` then finds
them up to date and only archives and links.

  prepare BUILD_DIR PKG_DIR   here: write PKG_DIR/{cmds.sh,src.tar.xz,device.sh,device-objects.py}
                              for every missing .cu object of BUILD_DIR (cmake's build dir,
                              .../build/llama-cpp-sys-2-*/out/build after a first configure)
  compile CMDS SECONDS JOBS   there (device.sh calls it): run the commands, most expensive first
  install BUILD_DIR PARTS...  here: unpack the returned objs.tar.xz.* parts and touch the objects
"""
import concurrent.futures as cf
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def prepare(build_dir, pkg):
    build_dir = os.path.abspath(build_dir)
    os.makedirs(pkg, exist_ok=True)
    entries = json.load(open(os.path.join(build_dir, "compile_commands.json")))
    cmds, src_root, nvcc = [], None, None
    for e in entries:
        if not e["file"].endswith(".cu"):
            continue
        toks = shlex.split(e["command"])
        nvcc = toks[0]
        if not os.path.exists(os.path.join(e["directory"], toks[toks.index("-o") + 1])):
            cmds.append(f"cd {shlex.quote(e['directory'])} && {e['command']}")
        if "/ggml/src/ggml-cuda/" in e["file"]:
            src_root = e["file"].split("/ggml/src/ggml-cuda/")[0]
    if src_root is None:
        sys.exit("no ggml-cuda sources in compile_commands.json: is this a cuda build dir?")
    open(os.path.join(pkg, "cmds.sh"), "w").write("\n".join(cmds) + "\n")
    with tarfile.open(os.path.join(pkg, "src.tar.xz"), "w:xz") as tar:
        skip = lambda t: None if t.name.endswith((".o", ".o.d")) else t
        for p in ["ggml/include", "ggml/src/ggml-cuda"] + [
            f"ggml/src/{f}" for f in os.listdir(f"{src_root}/ggml/src") if f.endswith(".h")
        ]:
            tar.add(f"{src_root}/{p}", filter=skip)
        tar.add(f"{build_dir}/ggml/src/ggml-cuda/CMakeFiles", filter=skip)
    device = f"""set -u
# The toolkit behind the nvcc path this build dir was configured with.
NV=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc | head -1)
mkdir -p {shlex.quote(os.path.dirname(os.path.dirname(os.path.dirname(nvcc))))}
ln -sfn $(dirname $(dirname $(readlink -f $NV))) {shlex.quote(os.path.dirname(os.path.dirname(nvcc)))}
D=$(dirname $0)
tar -C / -xJf $D/src.tar.xz
python3 $D/device-objects.py compile $D/cmds.sh ${{1:-420}} $(nproc)
(cd / && find {shlex.quote(build_dir.lstrip('/'))} -name '*.cu.o' | tar -cf - -T -) | xz -T0 -6 | split -b 15M - $OUT/objs.tar.xz.
"""
    open(os.path.join(pkg, "device.sh"), "w").write(device)
    subprocess.run(["cp", os.path.abspath(__file__), pkg], check=True)
    print(f"{len(cmds)} objects to compile; carry {pkg} and run: bash {pkg}/device.sh")


def compile_all(cmds_file, seconds, jobs):
    cmds = [l for l in open(cmds_file).read().splitlines() if l.strip()]

    def cost(line):
        src = line.split(" -c ")[-1].split()[0]
        return (any(k in src for k in ("mmq", "mmf", "fattn")), os.path.getsize(src) if os.path.exists(src) else 0)

    cmds.sort(key=cost, reverse=True)
    deadline, t0 = time.time() + seconds, time.time()

    def run(line):
        if time.time() > deadline:
            return line, "skipped (time)", ""
        r = subprocess.run(line, shell=True, capture_output=True, text=True)
        return line, r.returncode, r.stderr[-2000:]

    with cf.ThreadPoolExecutor(jobs) as ex:
        fails = [r for r in ex.map(run, cmds) if r[1] != 0]
    print(f"compiled {len(cmds) - len(fails)} of {len(cmds)} in {time.time() - t0:.0f} s")
    for line, rc, err in fails[:5]:
        print("FAILED", rc, line.split(" -c ")[-1].split()[0], err, sep="\n")
    sys.exit(1 if fails else 0)


def install(build_dir, parts):
    tar = subprocess.Popen(["tar", "-C", "/", "-xJf", "-"], stdin=subprocess.PIPE)
    for part in sorted(parts):  # split's suffixes .aa, .ab, … in order
        with open(part, "rb") as f:
            shutil.copyfileobj(f, tar.stdin)
    tar.stdin.close()
    if tar.wait() != 0:
        sys.exit("tar could not unpack the parts")
    now = time.time()
    n = 0
    for d, _, files in os.walk(build_dir):
        for f in files:
            if f.endswith(".cu.o"):
                os.utime(os.path.join(d, f), (now, now))
                n += 1
    print(f"{n} CUDA objects in place; now run the cargo build")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "compile":
        compile_all(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "install":
        install(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
