//! Learning-rate schedules: linear warm-up, then cosine / linear decay to `min_lr`, or constant.

use crate::checkpoint::LrScheduleState;
use crate::error::{NetsError, Result};

/// Schedule shape after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    /// `min + (base − min)·(1 + cos(π·progress))/2`.
    Cosine,
    /// `base + (min − base)·progress`.
    Linear,
    /// `base`.
    Constant,
}

impl ScheduleKind {
    /// `cosine`, `linear` or `constant`.
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Linear => "linear",
            ScheduleKind::Constant => "constant",
        }
    }

    /// Parses a schedule name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cosine" => Ok(ScheduleKind::Cosine),
            "linear" => Ok(ScheduleKind::Linear),
            "constant" => Ok(ScheduleKind::Constant),
            other => Err(NetsError::bad_request(
                "schedule",
                other,
                "expected cosine, linear or constant",
            )),
        }
    }
}

/// A warm-up + decay schedule over `total_steps` optimizer steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Shape after warm-up.
    pub kind: ScheduleKind,
    /// Peak learning rate.
    pub base_lr: f64,
    /// Final learning rate (cosine / linear).
    pub min_lr: f64,
    /// Warm-up steps (linear from `base/warmup` to `base`).
    pub warmup_steps: u64,
    /// Total optimizer steps.
    pub total_steps: u64,
}

impl Schedule {
    /// Learning rate of the update with 0-based index `step`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        match self.kind {
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Linear => self.base_lr + (self.min_lr - self.base_lr) * progress,
            ScheduleKind::Cosine => {
                self.min_lr
                    + (self.base_lr - self.min_lr)
                        * 0.5
                        * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// The checkpointable state at `position` (steps taken) with the last rate `current_lr`.
    pub fn state(&self, position: u64, current_lr: f64) -> LrScheduleState {
        LrScheduleState {
            kind: self.kind.name().into(),
            base_lr: self.base_lr,
            min_lr: self.min_lr,
            warmup_steps: self.warmup_steps,
            total_steps: self.total_steps,
            position,
            current_lr,
        }
    }

    /// The schedule of a saved state.
    pub fn from_state(s: &LrScheduleState) -> Result<Self> {
        Ok(Self {
            kind: ScheduleKind::parse(&s.kind)?,
            base_lr: s.base_lr,
            min_lr: s.min_lr,
            warmup_steps: s.warmup_steps,
            total_steps: s.total_steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = Schedule {
            kind: ScheduleKind::Cosine,
            base_lr: 1.0,
            min_lr: 0.0,
            warmup_steps: 4,
            total_steps: 14,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        assert!((s.lr(9) - 0.5).abs() < 1e-12);
        assert!(s.lr(14).abs() < 1e-12);
        let l = Schedule {
            kind: ScheduleKind::Linear,
            ..s
        };
        assert!((l.lr(9) - 0.5).abs() < 1e-12);
        let c = Schedule {
            kind: ScheduleKind::Constant,
            ..s
        };
        assert_eq!(c.lr(13), 1.0);
        assert_eq!(Schedule::from_state(&s.state(3, 0.1)).unwrap(), s);
    }
}
