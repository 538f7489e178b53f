//! AdamW (decoupled weight decay, PyTorch semantics) on candle tensors, with moments that can be
//! saved and restored exactly ([`crate::checkpoint::OptimizerMoments`]).
//!
//! For each parameter θ with gradient g, at update `t` (1-based) with learning rate `lr`:
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `θ ← θ·(1 − lr·λ)`,
//! `θ ← θ − lr·(m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`.

use std::collections::BTreeMap;

use candle_core::{Tensor, Var};

use crate::checkpoint::{AdamWState, OptimizerMoments};
use crate::error::{NetsError, Result};

/// AdamW over named variables.
#[derive(Debug)]
pub struct AdamW {
    state: AdamWState,
    moments: OptimizerMoments,
}

impl AdamW {
    /// A fresh optimizer (zero moments, created lazily at the first update).
    pub fn new(state: AdamWState) -> Self {
        Self {
            state,
            moments: OptimizerMoments::default(),
        }
    }

    /// Resumes from saved hyper-parameters, step count and moments.
    pub fn from_saved(state: AdamWState, moments: OptimizerMoments) -> Self {
        Self { state, moments }
    }

    /// Hyper-parameters and update count.
    pub fn state(&self) -> &AdamWState {
        &self.state
    }

    /// The moments (for checkpoints).
    pub fn moments(&self) -> &OptimizerMoments {
        &self.moments
    }

    /// Applies one update to every variable in `vars` with its gradient in `grads` (a parameter
    /// without a gradient is treated as having gradient zero, as its moments still decay).
    pub fn step(
        &mut self,
        vars: &BTreeMap<String, Var>,
        grads: &BTreeMap<String, Tensor>,
        lr: f64,
    ) -> Result<()> {
        self.state.t += 1;
        let t = self.state.t as i32;
        let (b1, b2) = (self.state.beta1, self.state.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        for (name, var) in vars {
            let theta = var.as_tensor();
            let g = match grads.get(name) {
                Some(g) => g.clone(),
                None => theta.zeros_like()?,
            };
            if g.dims() != theta.dims() {
                return Err(NetsError::shape(
                    format!("gradient of `{name}`"),
                    format!("{:?} (the parameter's)", theta.dims()),
                    format!("{:?}", g.dims()),
                ));
            }
            let m_prev = match self.moments.m.get(name) {
                Some(m) => m.clone(),
                None => theta.zeros_like()?,
            };
            let v_prev = match self.moments.v.get(name) {
                Some(v) => v.clone(),
                None => theta.zeros_like()?,
            };
            let m = ((m_prev * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((v_prev * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let m_hat = (&m / bc1)?;
            let v_hat = (&v / bc2)?;
            let update = (m_hat / (v_hat.sqrt()? + self.state.eps)?)?;
            let decayed = (theta * (1.0 - lr * self.state.weight_decay))?;
            let new = (decayed - (update * lr)?)?;
            var.set(&new)?;
            self.moments.m.insert(name.clone(), m);
            self.moments.v.insert(name.clone(), v);
        }
        Ok(())
    }

    /// The same update as [`AdamW::step`] on a CUDA device as one fused kernel launch
    /// ([`crate::gpu::adamw_step`]), in place: the variables' storage and the moments (created
    /// as zeros at the first update, kept f32 on the variables' device) are overwritten, so no
    /// per-parameter candle ops run. Every variable must be f32 on one CUDA device.
    #[cfg(feature = "cuda")]
    pub fn step_fused(
        &mut self,
        vars: &BTreeMap<String, Var>,
        grads: &BTreeMap<String, Tensor>,
        lr: f64,
    ) -> Result<()> {
        let mut held = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            let theta = var.as_tensor();
            let grad = grads.get(name).map(|g| g.contiguous()).transpose()?;
            let moment = |saved: Option<&Tensor>| -> Result<Tensor> {
                Ok(match saved {
                    Some(m) => m
                        .to_device(theta.device())?
                        .to_dtype(candle_core::DType::F32)?
                        .contiguous()?,
                    None => theta.zeros_like()?,
                })
            };
            let m = moment(self.moments.m.get(name))?;
            let v = moment(self.moments.v.get(name))?;
            self.moments.m.insert(name.clone(), m.clone());
            self.moments.v.insert(name.clone(), v.clone());
            held.push((name.as_str(), theta, grad, m, v));
        }
        let params: Vec<_> = held
            .iter()
            .map(|(name, theta, grad, m, v)| {
                let tensors = crate::gpu::AdamWTensors {
                    theta,
                    grad: grad.as_ref(),
                    m,
                    v,
                };
                (*name, tensors)
            })
            .collect();
        self.state.t += 1;
        crate::gpu::adamw_step(&params, &self.state, lr)
    }
}
