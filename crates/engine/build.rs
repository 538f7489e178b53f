//! Link step for the `cuda` feature on a CUDA toolkit without static libraries.
//!
//! llama.cpp's CUDA backend (through llama-cpp-sys-2) links the CUDA runtime and cuBLAS
//! statically. A toolkit assembled from the runtime wheels (docs/gpu.md, "a build machine
//! without a GPU") ships only the shared libraries: its setup gives empty stand-ins for the
//! static archives and names, in `ADASAMP_CUDA_SHARED_LIBS`, the directory of the shared
//! ones, which are then linked dynamically here. Without that variable nothing changes.

fn main() {
    println!("cargo:rerun-if-env-changed=ADASAMP_CUDA_SHARED_LIBS");
    let cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
    let llama = std::env::var_os("CARGO_FEATURE_LLAMA_CPP").is_some();
    if !(cuda && llama) {
        return;
    }
    if let Some(dir) = std::env::var_os("ADASAMP_CUDA_SHARED_LIBS") {
        println!(
            "cargo:rustc-link-search=native={}",
            std::path::Path::new(&dir).display()
        );
        for lib in ["cudart", "cublas", "cublasLt"] {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
}
