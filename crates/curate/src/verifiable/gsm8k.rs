//! GSM8K-style answers: the last number in the text, compared numerically with the expected
//! answer (SPEC 4: the reference compares strings, so "18.0" ≠ "18"; here they are equal).
//!
//! A number is digits with optional thousands separators (`1,234,567`: a comma followed by
//! exactly three digits) and an optional decimal part (`.5`); a `-` (or `−`) directly before the
//! digits is its sign unless a letter or digit precedes it (`3-5` is 3 and 5). A trailing period
//! ends the number (`… is 18.` is 18).

use super::rational::Rational;
use super::VerifyError;

/// Every number in `text`, in order (see the module doc for what counts).
pub fn numbers(text: &str) -> Vec<Rational> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        while i < chars.len() && chars[i].is_ascii_digit() {
            digits.push(chars[i]);
            i += 1;
        }
        // Thousands separators: ",ddd" not followed by another digit.
        while i + 4 <= chars.len()
            && chars[i] == ','
            && chars[i + 1..i + 4].iter().all(|c| c.is_ascii_digit())
            && !chars.get(i + 4).is_some_and(|c| c.is_ascii_digit())
        {
            digits.extend(&chars[i + 1..i + 4]);
            i += 4;
        }
        if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
            digits.push('.');
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                digits.push(chars[i]);
                i += 1;
            }
        }
        let negative = start > 0
            && matches!(chars[start - 1], '-' | '−')
            && !(start > 1 && chars[start - 2].is_alphanumeric());
        if let Some(mut n) = Rational::parse_decimal(&digits) {
            if negative {
                match n.checked_neg() {
                    Some(m) => n = m,
                    None => continue,
                }
            }
            out.push(n);
        }
    }
    out
}

/// The last number in `text`, if any.
pub fn last_number(text: &str) -> Option<Rational> {
    numbers(text).pop()
}

/// The expected answer from a ground truth: a JSON number, or a string whose last number is
/// the answer (GSM8K's `"… #### 72"` solution format included).
pub fn parse_ground_truth(gt: &serde_json::Value) -> Result<Rational, VerifyError> {
    let text = match gt {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(VerifyError::BadGroundTruth(format!(
                "gsm8k expects the answer as a string or number, got {other}"
            )))
        }
    };
    let answer = text.rsplit("####").next().unwrap_or(&text);
    last_number(answer).ok_or_else(|| {
        VerifyError::BadGroundTruth(format!("gsm8k answer {text:?} contains no number"))
    })
}

/// Whether the last number of `response` equals `expected`.
pub fn is_correct(response: &str, expected: Rational) -> bool {
    last_number(response) == Some(expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(s: &str) -> Rational {
        Rational::parse_decimal(s).unwrap()
    }

    #[test]
    fn last_number_rules() {
        assert_eq!(last_number("so 3 + 15 = 18."), Some(n("18")));
        assert_eq!(last_number("The answer is 18.0"), Some(n("18")));
        assert_eq!(last_number("She pays $1,234 in total"), Some(n("1234")));
        assert_eq!(last_number("1,234,567 people"), Some(n("1234567")));
        assert_eq!(last_number("temperature: -5 degrees"), Some(n("-5")));
        assert_eq!(last_number("temperature: −5.5"), Some(n("-5.5")));
        assert_eq!(last_number("pages 3-5"), Some(n("5")));
        assert_eq!(last_number("a list 1,2,3"), Some(n("3")));
        assert_eq!(last_number("12,34"), Some(n("34")));
        assert_eq!(last_number("0.75 of it"), Some(n("0.75")));
        assert_eq!(last_number("no digits here."), None);
        assert_eq!(numbers("x2 and 7"), vec![n("2"), n("7")]);
    }

    #[test]
    fn numeric_comparison() {
        let gt = parse_ground_truth(&json!("18")).unwrap();
        assert!(is_correct("… so she makes $18.00 every day.", gt));
        assert!(is_correct("#### 18", gt));
        assert!(!is_correct("18 eggs, minus 3 = 15", gt));
        assert!(!is_correct("I don't know", gt));
        let gt = parse_ground_truth(&json!("Natalia sold 48/2 = 24 clips.\n#### 1,234")).unwrap();
        assert!(is_correct("In total 1234", gt));
        assert!(is_correct("In total 1,234.0.", gt));
        let gt = parse_ground_truth(&json!(-7)).unwrap();
        assert!(is_correct("the change is -7", gt));
        assert!(!is_correct("the change is 7", gt));
    }

    #[test]
    fn malformed_ground_truths_are_errors() {
        for bad in [json!("none"), json!(null), json!(["18"]), json!({"a": 1})] {
            assert!(parse_ground_truth(&bad).is_err(), "{bad}");
        }
    }
}
