//! `temperature` (`z / T`) and `dynamic_temperature` (entropy-scaled temperature).

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// Divides every logit by `T > 0`: `z' = z / T`.
#[derive(Debug, Clone)]
pub struct Temperature {
    /// The temperature.
    pub temperature: f32,
}

impl Temperature {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "temperature";

    /// Reads `{temperature}` (> 0, finite).
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let temperature = p.f32_checked(
            "temperature",
            None,
            |v| v > 0.0 && v.is_finite(),
            "must be > 0 and finite in f32 (use the `greedy` stage for T = 0)",
        )?;
        Ok(Self { temperature })
    }
}

impl Stage for Temperature {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if self.temperature != 1.0 {
            row.divide(self.temperature);
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

/// Entropy-scaled temperature (llama.cpp `temp_ext`):
/// `T = Tmin + (Tmax − Tmin)·(H / ln V')^exponent`, `Tmin/Tmax = temp ∓ range` (clamped at 0),
/// `V'` the number of tokens still present. `T = 0` keeps only the most likely token.
#[derive(Debug, Clone)]
pub struct DynamicTemperature {
    /// Centre temperature.
    pub temp: f32,
    /// Half-width of the temperature range.
    pub range: f32,
    /// Exponent applied to the normalised entropy.
    pub exponent: f32,
}

impl DynamicTemperature {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "dynamic_temperature";

    /// Reads `{temp, range (default 0), exponent (default 1)}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let temp = p.f32_checked(
            "temp",
            None,
            |v| v >= 0.0 && v.is_finite(),
            "must be ≥ 0 and finite in f32",
        )?;
        let range = p.f32_checked(
            "range",
            Some(0.0),
            |v| v >= 0.0 && v.is_finite(),
            "must be ≥ 0 and finite in f32",
        )?;
        let exponent = p.f32_checked(
            "exponent",
            Some(1.0),
            |v| v > 0.0 && v.is_finite(),
            "must be > 0 and finite in f32",
        )?;
        Ok(Self {
            temp,
            range,
            exponent,
        })
    }
}

impl Stage for DynamicTemperature {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        let t = if self.range > 0.0 {
            let n = row.kept();
            if n <= 1 {
                return Ok(());
            }
            let tmin = (self.temp - self.range).max(0.0);
            let tmax = self.temp + self.range;
            let (_, h) = row.lse_entropy();
            let norm = (h / (n as f64).ln()) as f32;
            tmin + (tmax - tmin) * norm.powf(self.exponent)
        } else {
            self.temp
        };
        if t <= 0.0 {
            let m = row.max();
            row.retain_ge(m);
        } else if t != 1.0 {
            row.divide(t);
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
