//! [`SamplerConfig`]: the YAML (and `config.json`) description of a learned sampler's
//! architecture.
//!
//! ```yaml
//! architecture: sampling_network   # or local_probability_transform | simple_distribution_aware_transform
//! d_model: 32
//! d_ff: 64
//! n_blocks: 4
//! n_heads: 4
//! scale: true
//! # encoder_hidden: 32             # optional, SPEC §2's SwiGLU(1, 32, d) encoder width
//! ```
//!
//! `local_probability_transform` takes `hidden`; `simple_distribution_aware_transform` takes
//! `hidden` and `dynamic_truncation`. Unknown fields are rejected (the message names the field),
//! and [`SamplerConfig::validate`] checks every size.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{NetsError, Result};

/// Largest width (hidden, d_model, d_ff, encoder_hidden) a config may ask for: a guard against
/// typos that would allocate gigabytes.
pub const MAX_WIDTH: usize = 1 << 16;
/// Largest number of blocks a `sampling_network` may have.
pub const MAX_BLOCKS: usize = 256;

/// Which architecture, with its hyper-parameters. Tagged by the `architecture` field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "architecture", rename_all = "snake_case")]
pub enum SamplerConfig {
    /// SPEC §2 LocalProbabilityTransform(h): `l' = lp + SwiGLU(1,h,1)(lp)` per token, then the
    /// soft truncation gate with learned scalars s, τ.
    LocalProbabilityTransform(LocalConfig),
    /// SPEC §2 SimpleDistributionAwareTransform(h, dynamic_truncation).
    SimpleDistributionAwareTransform(DistributionAwareConfig),
    /// SPEC §2 SamplingNetwork(d_model, d_ff, n_blocks, n_heads, scale).
    SamplingNetwork(SamplingNetworkConfig),
}

/// Hyper-parameters of the LocalProbabilityTransform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// `h` of the per-token `SwiGLU(1, h, 1)` (its hidden width is `floor(2h/3)`); ≥ 2.
    pub hidden: usize,
}

/// Hyper-parameters of the SimpleDistributionAwareTransform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionAwareConfig {
    /// `h`: width of the per-token `Linear(1→h)+SiLU` features and of `SwiGLU(h+2, h, 1)`; ≥ 2.
    pub hidden: usize,
    /// `true`: (s, τ) = `softplus(Linear(2→2)(stats))` per row; `false`: (s, τ) =
    /// `softplus(learned [0.5413, 10.0])`.
    pub dynamic_truncation: bool,
}

/// Hyper-parameters of the SamplingNetwork.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingNetworkConfig {
    /// Token feature width `d`; ≥ 4 (the heads use `d/2`) and divisible by `n_heads`.
    pub d_model: usize,
    /// `h` of each block's feed-forward `SwiGLU(d, d_ff, d)`; ≥ 2.
    pub d_ff: usize,
    /// Number of post-LN linear-attention blocks; ≥ 1.
    pub n_blocks: usize,
    /// Attention heads (width `d_model / n_heads` each); ≥ 1.
    pub n_heads: usize,
    /// `true`: `mult = softplus(SwiGLU(d, d/2, 1)(c))`; `false`: `mult = 1` exactly.
    pub scale: bool,
    /// `h` of the per-token encoder `SwiGLU(1, encoder_hidden, d)`; SPEC §2 fixes 32. ≥ 2.
    #[serde(default = "default_encoder_hidden")]
    pub encoder_hidden: usize,
}

fn default_encoder_hidden() -> usize {
    32
}

/// The SPEC's encoder width `SwiGLU(1, 32, d)`.
pub const DEFAULT_ENCODER_HIDDEN: usize = 32;

impl SamplerConfig {
    /// Parses a YAML document and validates it. `origin` names the source in error messages.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self> {
        let config: SamplerConfig =
            serde_yaml_ng::from_str(text).map_err(|e| NetsError::ConfigParse {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a YAML file.
    pub fn from_yaml_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(NetsError::MissingFile {
                what: "sampler config".into(),
                path: path.to_path_buf(),
            });
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| NetsError::io("cannot read", path, e))?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Serialises to YAML (round-trips through [`SamplerConfig::from_yaml_str`]).
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml_ng::to_string(self).map_err(|e| NetsError::ConfigParse {
            origin: "<serialise>".into(),
            message: e.to_string(),
        })
    }

    /// The `architecture` tag: `local_probability_transform`,
    /// `simple_distribution_aware_transform` or `sampling_network`.
    pub fn architecture(&self) -> &'static str {
        match self {
            SamplerConfig::LocalProbabilityTransform(_) => "local_probability_transform",
            SamplerConfig::SimpleDistributionAwareTransform(_) => {
                "simple_distribution_aware_transform"
            }
            SamplerConfig::SamplingNetwork(_) => "sampling_network",
        }
    }

    /// Checks every size: widths ≥ 2 where a SwiGLU needs `floor(2h/3) ≥ 1`, `d_model ≥ 4` and
    /// divisible by `n_heads`, counts ≥ 1, nothing above [`MAX_WIDTH`] / [`MAX_BLOCKS`].
    pub fn validate(&self) -> Result<()> {
        fn width(field: &str, v: usize, min: usize) -> Result<()> {
            if v < min {
                return Err(NetsError::config(
                    field,
                    v,
                    format!("must be ≥ {min} (a SwiGLU of width h has floor(2h/3) hidden units)"),
                ));
            }
            if v > MAX_WIDTH {
                return Err(NetsError::config(
                    field,
                    v,
                    format!("must be ≤ {MAX_WIDTH}"),
                ));
            }
            Ok(())
        }
        match self {
            SamplerConfig::LocalProbabilityTransform(c) => width("hidden", c.hidden, 2),
            SamplerConfig::SimpleDistributionAwareTransform(c) => width("hidden", c.hidden, 2),
            SamplerConfig::SamplingNetwork(c) => {
                width("d_model", c.d_model, 4)?;
                width("d_ff", c.d_ff, 2)?;
                width("encoder_hidden", c.encoder_hidden, 2)?;
                if c.n_blocks < 1 || c.n_blocks > MAX_BLOCKS {
                    return Err(NetsError::config(
                        "n_blocks",
                        c.n_blocks,
                        format!("must be in 1..={MAX_BLOCKS}"),
                    ));
                }
                if c.n_heads < 1 {
                    return Err(NetsError::config("n_heads", c.n_heads, "must be ≥ 1"));
                }
                if c.d_model % c.n_heads != 0 {
                    return Err(NetsError::config(
                        "n_heads",
                        c.n_heads,
                        format!("d_model = {} is not divisible by n_heads", c.d_model),
                    ));
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for SamplerConfig {
    /// One line: the architecture and its hyper-parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SamplerConfig::LocalProbabilityTransform(c) => {
                write!(f, "local_probability_transform(hidden {})", c.hidden)
            }
            SamplerConfig::SimpleDistributionAwareTransform(c) => write!(
                f,
                "simple_distribution_aware_transform(hidden {}, dynamic_truncation {})",
                c.hidden, c.dynamic_truncation
            ),
            SamplerConfig::SamplingNetwork(c) => write!(
                f,
                "sampling_network(d_model {}, d_ff {}, n_blocks {}, n_heads {}, scale {}, encoder_hidden {})",
                c.d_model, c.d_ff, c.n_blocks, c.n_heads, c.scale, c.encoder_hidden
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_architectures() {
        let c = SamplerConfig::from_yaml_str(
            "architecture: sampling_network\nd_model: 32\nd_ff: 64\nn_blocks: 4\nn_heads: 4\nscale: true\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            c,
            SamplerConfig::SamplingNetwork(SamplingNetworkConfig {
                d_model: 32,
                d_ff: 64,
                n_blocks: 4,
                n_heads: 4,
                scale: true,
                encoder_hidden: 32
            })
        );
        let c = SamplerConfig::from_yaml_str(
            "architecture: local_probability_transform\nhidden: 64\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.architecture(), "local_probability_transform");
        let c = SamplerConfig::from_yaml_str(
            "architecture: simple_distribution_aware_transform\nhidden: 64\ndynamic_truncation: false\n",
            "t",
        )
        .unwrap();
        let back = SamplerConfig::from_yaml_str(&c.to_yaml().unwrap(), "t").unwrap();
        assert_eq!(c, back);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<SamplerConfig>(&json).unwrap(), c);
    }

    #[test]
    fn unknown_field_is_named() {
        let e = SamplerConfig::from_yaml_str(
            "architecture: local_probability_transform\nhidden: 64\nhiden: 3\n",
            "cfg.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hiden") && e.contains("cfg.yaml"), "{e}");
        let e = SamplerConfig::from_yaml_str("architecture: transformer\nhidden: 64\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transformer"), "{e}");
        let e = SamplerConfig::from_yaml_str("architecture: local_probability_transform\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hidden"), "{e}");
    }

    #[test]
    fn validation_names_field() {
        let bad = [
            ("architecture: sampling_network\nd_model: 30\nd_ff: 64\nn_blocks: 4\nn_heads: 4\nscale: true\n", "n_heads"),
            ("architecture: sampling_network\nd_model: 32\nd_ff: 64\nn_blocks: 0\nn_heads: 4\nscale: true\n", "n_blocks"),
            ("architecture: sampling_network\nd_model: 32\nd_ff: 1\nn_blocks: 1\nn_heads: 4\nscale: true\n", "d_ff"),
            ("architecture: sampling_network\nd_model: 32\nd_ff: 8\nn_blocks: 1\nn_heads: 0\nscale: true\n", "n_heads"),
            ("architecture: sampling_network\nd_model: 2\nd_ff: 8\nn_blocks: 1\nn_heads: 1\nscale: true\n", "d_model"),
            ("architecture: local_probability_transform\nhidden: 1\n", "hidden"),
            ("architecture: local_probability_transform\nhidden: 100000000\n", "hidden"),
        ];
        for (yaml, field) in bad {
            let e = SamplerConfig::from_yaml_str(yaml, "t").unwrap_err();
            match &e {
                NetsError::InvalidConfig { field: f, .. } => assert_eq!(f, field, "{e}"),
                other => panic!("{yaml}: {other}"),
            }
        }
    }
}
