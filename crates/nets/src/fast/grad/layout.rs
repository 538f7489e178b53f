//! [`ParamLayout`]: every parameter of a configuration at an offset of one flat vector, in
//! manifest order ([`crate::params::param_specs`]), each in its candle layout.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};

use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
use crate::params::{check_shapes, param_specs, ParamSpec};

/// Names, shapes and offsets of a configuration's parameters in one flat vector.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    specs: Vec<ParamSpec>,
    offsets: Vec<usize>,
    by_name: HashMap<String, usize>,
    len: usize,
}

impl ParamLayout {
    /// The layout of `config`'s parameters.
    pub fn new(config: &SamplerConfig) -> Result<Self> {
        let specs = param_specs(config)?;
        let mut offsets = Vec::with_capacity(specs.len());
        let mut len = 0;
        for s in &specs {
            offsets.push(len);
            len += s.numel();
        }
        let by_name = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(Self {
            specs,
            offsets,
            by_name,
            len,
        })
    }

    /// Total number of scalars.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the configuration has no parameters (never, for the three architectures).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Parameter names in layout order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|s| s.name.as_str())
    }

    /// Offset of parameter `name`, checked to hold `numel` scalars.
    pub fn offset(&self, name: &str, numel: usize) -> Result<usize> {
        let &i = self
            .by_name
            .get(name)
            .ok_or_else(|| NetsError::MissingParameter {
                origin: "the fast training layout".into(),
                name: name.to_string(),
                expected: vec![numel],
                architecture: "this configuration".into(),
                hint: String::new(),
            })?;
        if self.specs[i].numel() != numel {
            return Err(NetsError::shape(
                format!("parameter `{name}`"),
                format!("{numel} values"),
                format!("{:?}", self.specs[i].shape),
            ));
        }
        Ok(self.offsets[i])
    }

    /// Copies `params` (exactly the parameters of `config`, by name, with their shapes; checked
    /// as by [`crate::params::check_shapes`]) into `flat` as f32.
    pub fn flatten(
        &self,
        config: &SamplerConfig,
        params: &[(String, Tensor)],
        flat: &mut Vec<f32>,
    ) -> Result<()> {
        let shapes: BTreeMap<String, Vec<usize>> = params
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        check_shapes(config, &shapes, "the fast training engine's weights")?;
        flat.clear();
        flat.resize(self.len, 0.0);
        for (name, t) in params {
            let o = self.offsets[self.by_name[name.as_str()]];
            let v = t
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            flat[o..o + v.len()].copy_from_slice(&v);
        }
        Ok(())
    }

    /// `flat` split per parameter: `(name, shape, values)` in layout order.
    pub fn split<'a, T>(
        &'a self,
        flat: &'a [T],
    ) -> impl Iterator<Item = (&'a str, &'a [usize], &'a [T])> + 'a {
        self.specs
            .iter()
            .zip(&self.offsets)
            .map(move |(s, &o)| (s.name.as_str(), s.shape.as_slice(), &flat[o..o + s.numel()]))
    }
}
