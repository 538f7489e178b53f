//! `greedy`: keep only the most likely token.

use crate::error::Result;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{Context, Stage};

/// Keeps only the arg-max token (the lowest id among ties), so sampling becomes greedy decoding.
#[derive(Debug, Clone)]
pub struct Greedy;

impl Greedy {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "greedy";

    /// Takes no parameters.
    pub fn from_params(_: &mut ParamReader) -> Result<Self> {
        Ok(Self)
    }
}

impl Stage for Greedy {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if let Some(i) = row.argmax() {
            let id = row.id_at(i);
            row.keep_only(id);
        }
        Ok(())
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
