//! Candidate records for training: the JSONL written by `generate` ([`adasamp_engine::record`]),
//! read with every record's pipeline (`sampler_info.config`) checked to build.
//!
//! Errors name `file:line` and the field; blank lines are skipped; fields training does not use
//! are ignored.

use std::path::Path;

use adasamp_engine::record::{self, NumberedRecord};
use adasamp_sampling::Pipeline;

use crate::error::{NetsError, Result};

/// Checks that every record's pipeline builds (`origin` names the file in errors).
fn check_pipelines(records: &[NumberedRecord], origin: &str) -> Result<()> {
    for r in records {
        Pipeline::from_spec(r.record.sampler_info.config.clone()).map_err(|e| {
            NetsError::BadRecord {
                origin: origin.to_string(),
                line: r.line,
                id: r.id(),
                field: "sampler_info.config".into(),
                reason: e.to_string(),
            }
        })?;
    }
    Ok(())
}

/// Parses JSONL text (`origin` names it in errors) and checks the records' pipelines.
pub fn parse_records(text: &str, origin: &str) -> Result<Vec<NumberedRecord>> {
    let records = record::parse_jsonl(text, origin)?;
    check_pipelines(&records, origin)?;
    Ok(records)
}

/// Reads a candidate-records JSONL file and checks the records' pipelines. An empty file is an
/// error.
pub fn read_records(path: &Path) -> Result<Vec<NumberedRecord>> {
    let records = record::read_jsonl(path)?;
    if records.is_empty() {
        return Err(NetsError::NoData {
            what: format!("records in {}", path.display()),
        });
    }
    check_pipelines(&records, &path.display().to_string())?;
    Ok(records)
}
