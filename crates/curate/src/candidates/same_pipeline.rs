//! Whether two descriptions of a pipeline are the same pipeline: the same stages in the same
//! order with the same parameters (numbers compared by value, so `1` = `1.0`).

use std::collections::BTreeMap;

use adasamp_sampling::spec::Value as YamlValue;
use adasamp_sampling::PipelineSpec;

/// Where two pipelines differ: the stage (if one is at fault) and how.
pub type Difference = (Option<String>, String);

/// Whether the pipeline with stage names `their_stages` (and, when known, `their_config`) is
/// `ours`; else the first stage that differs and how.
pub fn same_pipeline(
    ours: &PipelineSpec,
    their_stages: &[String],
    their_config: Option<&PipelineSpec>,
) -> Result<(), Difference> {
    let mine: Vec<&str> = ours.processors.iter().map(|s| s.name.as_str()).collect();
    let theirs: Vec<&str> = their_stages.iter().map(String::as_str).collect();
    if mine != theirs {
        let k = mine.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        return Err((
            mine.get(k).or(theirs.get(k)).map(|s| s.to_string()),
            format!(
                "its stages are [{}], ours [{}]",
                theirs.join(", "),
                mine.join(", ")
            ),
        ));
    }
    let Some(config) = their_config else {
        return Ok(());
    };
    for (a, b) in ours.processors.iter().zip(&config.processors) {
        let same = a.params.len() == b.params.len()
            && a.params
                .iter()
                .all(|(k, v)| b.params.get(k).is_some_and(|w| same_value(v, w)));
        if !same {
            return Err((
                Some(a.name.clone()),
                format!(
                    "its parameters are {}, ours {}",
                    show(&b.params),
                    show(&a.params)
                ),
            ));
        }
    }
    Ok(())
}

/// [`same_pipeline`] of two full specs.
pub fn same_spec(ours: &PipelineSpec, theirs: &PipelineSpec) -> Result<(), Difference> {
    let names: Vec<String> = theirs.processors.iter().map(|s| s.name.clone()).collect();
    same_pipeline(ours, &names, Some(theirs))
}

/// Parameters as one-line text.
fn show(params: &BTreeMap<String, YamlValue>) -> String {
    serde_json::to_string(params).unwrap_or_else(|_| format!("{params:?}"))
}

/// Equal values, numbers compared by value (`1` = `1.0`).
fn same_value(a: &YamlValue, b: &YamlValue) -> bool {
    match (a, b) {
        (YamlValue::Number(x), YamlValue::Number(y)) => x.as_f64() == y.as_f64(),
        (YamlValue::Sequence(x), YamlValue::Sequence(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (YamlValue::Mapping(x), YamlValue::Mapping(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| same_value(k1, k2) && same_value(v1, v2))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(processors: &str) -> PipelineSpec {
        adasamp_sampling::PipelineFile::from_yaml(
            &format!("pipelines:\n  - name: x\n    processors: {processors}\n"),
            None,
        )
        .unwrap()
        .pipelines
        .remove(0)
    }

    #[test]
    fn numbers_compare_by_value_and_differences_are_named() {
        let a = spec(
            "[{name: top_k, params: {top_k: 64}}, {name: temperature, params: {temperature: 1}}]",
        );
        let b = spec("[{name: top_k, params: {top_k: 64.0}}, {name: temperature, params: {temperature: 1.0}}]");
        assert_eq!(same_spec(&a, &b), Ok(()));
        let c = spec(
            "[{name: top_k, params: {top_k: 32}}, {name: temperature, params: {temperature: 1}}]",
        );
        let (stage, why) = same_spec(&a, &c).unwrap_err();
        assert_eq!(stage.as_deref(), Some("top_k"));
        assert!(why.contains("32") && why.contains("64"), "{why}");
        let d = spec("[{name: top_k, params: {top_k: 64}}]");
        let (stage, _) = same_spec(&a, &d).unwrap_err();
        assert_eq!(stage.as_deref(), Some("temperature"));
        assert_eq!(
            same_pipeline(&a, &["top_k".into(), "temperature".into()], None),
            Ok(())
        );
    }
}
