//! With the `cuda` feature: compiles the fused learned-sampler kernels (`src/gpu/*.cu`, which
//! share the device helpers of `src/gpu/common.cuh`) to PTX with nvcc (`$CUDA_ROOT/bin/nvcc`,
//! else `nvcc` on `PATH`) for `compute_$CUDA_COMPUTE_CAP` (default 80: PTX is JIT-compiled for
//! any newer GPU at load). Without the feature: nothing.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The kernel sources, each compiled to `$OUT_DIR/<stem>.ptx`.
const KERNELS: [&str; 4] = [
    "adamw",
    "fused_samplers",
    "fused_training",
    "sampling_network_tc",
];
/// The folder of the kernel sources and of the device helpers they share.
const KERNEL_DIR: &str = "src/gpu";
/// Headers included by every kernel source (from [`KERNEL_DIR`]).
const HEADERS: [&str; 3] = ["common.cuh", "mma.cuh", "tensor_core.cuh"];

fn main() -> Result<(), String> {
    println!("cargo::rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return Ok(());
    }
    println!("cargo::rerun-if-env-changed=CUDA_ROOT");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    let nvcc = env::var_os("CUDA_ROOT")
        .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    for header in HEADERS {
        println!("cargo::rerun-if-changed={KERNEL_DIR}/{header}");
    }
    for stem in KERNELS {
        let source = format!("{KERNEL_DIR}/{stem}.cu");
        println!("cargo::rerun-if-changed={source}");
        let ptx = out_dir.join(format!("{stem}.ptx"));
        let status = Command::new(&nvcc)
            .args([
                "--ptx",
                &format!("-arch=compute_{cap}"),
                "-O3",
                "-std=c++17",
                "-I",
                KERNEL_DIR,
            ])
            .arg(&source)
            .arg("-o")
            .arg(&ptx)
            .status()
            .map_err(|e| format!("cannot run {}: {e} (see docs/gpu.md)", nvcc.display()))?;
        if !status.success() {
            return Err(format!("{} failed on {source}: {status}", nvcc.display()));
        }
    }
    Ok(())
}
