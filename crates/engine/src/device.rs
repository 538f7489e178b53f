//! Where a model's weights live and its forward passes run: the CPU or one NVIDIA GPU.

use crate::error::{bad_request, EngineError, Result};

/// A compute device: `cpu`, or `cuda` / `cuda:N` (GPU N, default 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ComputeDevice {
    /// The CPU (every build).
    #[default]
    Cpu,
    /// NVIDIA GPU number `n` (builds with the `cuda` feature).
    Cuda(usize),
}

impl ComputeDevice {
    /// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N`; anything else is a
    /// [`EngineError::BadRequest`] naming the field `device` and the value.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            bad_request(
                "device",
                format!("`{s}`"),
                "expected cpu, cuda or cuda:N (N = GPU number)",
            )
        };
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n.parse().map(Self::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }

    /// Whether this build can run models on a GPU (the `cuda` feature).
    pub const fn cuda_built() -> bool {
        cfg!(feature = "cuda")
    }

    /// Fails with [`EngineError::CudaNotBuilt`] when this is a GPU and the build has no CUDA.
    pub fn check_built(self) -> Result<Self> {
        match self {
            Self::Cuda(ordinal) if !Self::cuda_built() => {
                Err(EngineError::CudaNotBuilt { ordinal })
            }
            d => Ok(d),
        }
    }

    /// The candle device (opens the GPU's CUDA context for `Cuda`).
    pub fn candle(self) -> Result<candle_core::Device> {
        match self.check_built()? {
            Self::Cpu => Ok(candle_core::Device::Cpu),
            Self::Cuda(n) => Ok(candle_core::Device::new_cuda(n)?),
        }
    }

    /// Whether this is the CPU.
    pub fn is_cpu(self) -> bool {
        self == Self::Cpu
    }
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for ComputeDevice {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_cuda_ordinals() {
        assert_eq!(ComputeDevice::parse("cpu").unwrap(), ComputeDevice::Cpu);
        assert_eq!(
            ComputeDevice::parse("cuda").unwrap(),
            ComputeDevice::Cuda(0)
        );
        assert_eq!(
            ComputeDevice::parse("cuda:3").unwrap(),
            ComputeDevice::Cuda(3)
        );
        assert_eq!(ComputeDevice::Cuda(2).to_string(), "cuda:2");
        assert_eq!(
            "cuda:1".parse::<ComputeDevice>().unwrap(),
            ComputeDevice::Cuda(1)
        );
    }

    #[test]
    fn rejects_other_names_naming_the_field_and_value() {
        for s in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""] {
            match ComputeDevice::parse(s) {
                Err(EngineError::BadRequest { field, value, .. }) => {
                    assert_eq!(field, "device");
                    assert_eq!(value, format!("`{s}`"));
                }
                other => panic!("{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn cuda_on_a_cpu_build_is_a_typed_error() {
        let r = ComputeDevice::Cuda(1).candle();
        if ComputeDevice::cuda_built() {
            return;
        }
        match r {
            Err(e @ EngineError::CudaNotBuilt { ordinal: 1 }) => {
                assert!(
                    e.to_string().contains("this build has no CUDA support"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(ComputeDevice::Cpu.candle().unwrap().is_cpu());
        // Loading refuses before it touches (or fetches) any model.
        let opts = crate::LoadOptions {
            device: ComputeDevice::Cuda(0),
            ..Default::default()
        };
        let r = crate::load(
            Some(std::path::Path::new("/nonexistent/model.gguf")),
            crate::BackendChoice::Auto,
            opts,
            &mut |_| {},
        );
        assert!(
            matches!(r, Err(EngineError::CudaNotBuilt { ordinal: 0 })),
            "{r:?}"
        );
    }
}
