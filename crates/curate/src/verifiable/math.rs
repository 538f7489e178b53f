//! MATH-style answers: extract the final answer, normalise it, compare.
//!
//! **Extraction** ([`extract_answer`]): the last `\boxed{…}` (or `\fbox{…}`) with balanced
//! braces; else the text after the last "final answer is" (to the end of its `$…$`, else to the
//! end of the sentence or line); else the last inline `$…$`.
//!
//! **Normalisation** ([`normalize`]), after the usual MATH normaliser (Hendrycks et al.'s
//! `strip_string`): line breaks, `\!`, `\,` `\;` `\:` and spaces removed; `\\` → `\`;
//! `tfrac`/`dfrac` → `frac`; `\left`/`\right`, `\displaystyle` removed; degrees (`^{\circ}`,
//! `^\circ`, `°`), dollar signs and percent signs removed; `{,}` → `,`; a trailing unit `\text{ …}` /
//! `\mbox{ …}` cut, other `\text{X}` / `\textbf{X}` / `\mathrm{X}` unwrapped; `.5` → `0.5`;
//! a short left-hand side `x=` dropped; `\sqrt3` → `\sqrt{3}`; `\frac12` → `\frac{1}{2}`;
//! `a/b` of integers → `\frac{a}{b}`; trailing periods removed.
//!
//! **Equivalence** ([`equivalent`]): equal normalised strings; or both evaluate to the same exact
//! rational with a small evaluator of decimals (thousands separators in a lone number included),
//! `\frac{}{}`, `+ - * / \cdot \times \div`, unary minus and parentheses / braces; or both are
//! tuples / intervals with the same brackets whose elements are pairwise equivalent.
//! **Not covered**: symbolic algebra (`2x+2` vs `2(x+1)`), radicals and π beyond identical
//! normalised text (`\sqrt{8}` ≠ `2\sqrt{2}`), implicit multiplication, scientific notation,
//! sets in a different order, units beyond a trailing `\text{ …}`, and text answers beyond
//! exact normalised equality.

use super::rational::Rational;
use super::VerifyError;

/// The answer a solution text gives (see the module doc), or `None`.
pub fn extract_answer(text: &str) -> Option<String> {
    last_boxed(text)
        .or_else(|| final_answer_phrase(text))
        .or_else(|| last_inline_math(text))
}

fn last_boxed(text: &str) -> Option<String> {
    let mut starts: Vec<(usize, usize)> = Vec::new();
    for cmd in ["\\boxed", "\\fbox"] {
        starts.extend(text.match_indices(cmd).map(|(i, m)| (i, i + m.len())));
    }
    starts.sort_unstable();
    for &(_, after) in starts.iter().rev() {
        let rest = &text[after..];
        if let Some(body) = rest.strip_prefix('{') {
            if let Some(end) = closing_brace(body) {
                return Some(body[..end].trim().to_string());
            }
        } else if let Some(body) = rest.strip_prefix(' ') {
            // `\boxed 5`: up to whitespace or `$`.
            let end = body
                .find(|c: char| c.is_whitespace() || c == '$')
                .unwrap_or(body.len());
            if end > 0 {
                return Some(body[..end].to_string());
            }
        }
    }
    None
}

/// Byte index of the `}` closing an already opened `{` in `body`, if balanced.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 1usize;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn final_answer_phrase(text: &str) -> Option<String> {
    const PHRASE: &str = "final answer is";
    // ASCII lowercasing keeps byte offsets.
    let at = text.to_ascii_lowercase().rfind(PHRASE)?;
    let rest = text[at + PHRASE.len()..].trim_start();
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
    let answer = if let Some(math) = rest.strip_prefix('$') {
        let math = math.trim_start_matches('$');
        &math[..math.find('$')?]
    } else {
        let line = rest.lines().next().unwrap_or("");
        match line.find(". ") {
            Some(i) => &line[..i],
            None => line,
        }
    };
    let answer = answer.trim().trim_end_matches('.').trim();
    (!answer.is_empty()).then(|| answer.to_string())
}

fn last_inline_math(text: &str) -> Option<String> {
    let text = text.replace("$$", "$");
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut open = false;
    let mut prev = '\0';
    for c in text.chars() {
        if c == '$' && prev != '\\' {
            if open {
                segments.push(std::mem::take(&mut current));
            }
            current.clear();
            open = !open;
        } else if open {
            current.push(c);
        }
        prev = c;
    }
    segments
        .into_iter()
        .rev()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// The normalised form of an answer (see the module doc).
pub fn normalize(answer: &str) -> String {
    let mut s = answer.replace('\n', "").replace("\\!", "");
    s = s.replace("\\\\", "\\");
    s = s.replace("tfrac", "frac").replace("dfrac", "frac");
    for gone in [
        "\\left",
        "\\right",
        "\\displaystyle",
        "^{\\circ}",
        "^\\circ",
        "°",
    ] {
        s = s.replace(gone, "");
    }
    s = s.replace("\\$", "").replace('$', "").replace("{,}", ",");
    for unit in ["\\text{ ", "\\mbox{ "] {
        if let Some(i) = s.find(unit) {
            if i > 0 {
                s.truncate(i);
            }
        }
    }
    for wrapper in ["\\text", "\\textbf", "\\mathrm", "\\mbox"] {
        s = unwrap_command(&s, wrapper);
    }
    s = s.replace("\\%", "").replace('%', "");
    for thin in ["\\,", "\\;", "\\:", "\\ "] {
        s = s.replace(thin, "");
    }
    s = s.replace(" .", " 0.").replace("{.", "{0.");
    if s.trim_start().starts_with('.') {
        s = format!("0{}", s.trim_start());
    }
    // `x = 5`, `k=3`: a short left-hand side is a name, not part of the answer.
    if s.matches('=').count() == 1 {
        if let Some((lhs, rhs)) = s.split_once('=') {
            if lhs.trim().chars().count() <= 2 {
                s = rhs.to_string();
            }
        }
    }
    s = fix_sqrt(&s);
    s.retain(|c| !c.is_whitespace());
    s = fix_fracs(&s);
    if s == "0.5" {
        s = "\\frac{1}{2}".into();
    }
    s = fix_a_slash_b(&s);
    while s.ends_with('.') {
        s.pop();
    }
    s
}

/// `\cmd{X}` → `X` for every occurrence with balanced braces.
fn unwrap_command(s: &str, cmd: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(cmd) {
        let after = &rest[i + cmd.len()..];
        let body = after.strip_prefix('{');
        match body.and_then(|b| closing_brace(b).map(|e| (b, e))) {
            Some((b, e)) => {
                out.push_str(&rest[..i]);
                out.push_str(&b[..e]);
                rest = &b[e + 1..];
            }
            None => {
                out.push_str(&rest[..i + cmd.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `\sqrt3` → `\sqrt{3}` (one character argument without braces).
fn fix_sqrt(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut rest = s;
    while let Some(i) = rest.find("\\sqrt") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        let mut chars = rest.chars();
        match chars.next() {
            Some(c) if c != '{' && c != '[' && !c.is_whitespace() && c != '\\' => {
                out.push('{');
                out.push(c);
                out.push('}');
                rest = chars.as_str();
            }
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

/// `\frac12` → `\frac{1}{2}`, `\frac1{2}` → `\frac{1}{2}`, `\frac{1}2` → `\frac{1}{2}`.
fn fix_fracs(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut rest = s;
    while let Some(i) = rest.find("\\frac") {
        out.push_str(&rest[..i + 5]);
        rest = &rest[i + 5..];
        for _ in 0..2 {
            if let Some(body) = rest.strip_prefix('{') {
                match closing_brace(body) {
                    Some(e) => {
                        out.push_str(&rest[..e + 2]);
                        rest = &body[e + 1..];
                    }
                    None => break,
                }
            } else {
                let mut chars = rest.chars();
                match chars.next() {
                    Some(c) if c != '\\' => {
                        out.push('{');
                        out.push(c);
                        out.push('}');
                        rest = chars.as_str();
                    }
                    _ => break,
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// `3/4` (two integers) → `\frac{3}{4}`.
fn fix_a_slash_b(s: &str) -> String {
    if let Some((a, b)) = s.split_once('/') {
        let int = |x: &str| {
            let x = x.strip_prefix('-').unwrap_or(x);
            !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit())
        };
        if int(a) && int(b) {
            return format!("\\frac{{{a}}}{{{b}}}");
        }
    }
    s.to_string()
}

/// The exact value of a normalised answer that is a rational expression (see the module doc).
pub fn evaluate(normalized: &str) -> Option<Rational> {
    let lone_number_with_separators = {
        let (int, frac) = normalized.split_once('.').unwrap_or((normalized, ""));
        let int = int.strip_prefix('-').unwrap_or(int);
        let groups: Vec<&str> = int.split(',').collect();
        groups.len() > 1
            && (1..=3).contains(&groups[0].len())
            && groups[1..].iter().all(|g| g.len() == 3)
            && groups.iter().all(|g| g.bytes().all(|c| c.is_ascii_digit()))
            && frac.bytes().all(|c| c.is_ascii_digit())
    };
    let text = if lone_number_with_separators {
        normalized.replace(',', "")
    } else {
        normalized.to_string()
    };
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.expr()?;
    (p.i == p.s.len()).then_some(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn eat(&mut self, tok: &str) -> bool {
        if self.s[self.i..].starts_with(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Option<Rational> {
        let mut v = self.term()?;
        loop {
            if self.eat("+") {
                v = v.checked_add(self.term()?)?;
            } else if self.eat("-") {
                v = v.checked_sub(self.term()?)?;
            } else {
                return Some(v);
            }
        }
    }

    fn term(&mut self) -> Option<Rational> {
        let mut v = self.unary()?;
        loop {
            if self.eat("*") || self.eat("\\cdot") || self.eat("\\times") {
                v = v.checked_mul(self.unary()?)?;
            } else if self.eat("/") || self.eat("\\div") {
                v = v.checked_div(self.unary()?)?;
            } else {
                return Some(v);
            }
        }
    }

    fn unary(&mut self) -> Option<Rational> {
        if self.eat("-") {
            self.unary()?.checked_neg()
        } else if self.eat("+") {
            self.unary()
        } else {
            self.atom()
        }
    }

    fn atom(&mut self) -> Option<Rational> {
        if self.eat("\\frac") {
            let num = self.group()?;
            let den = self.group()?;
            return num.checked_div(den);
        }
        if self.eat("(") {
            let v = self.expr()?;
            return self.eat(")").then_some(v);
        }
        if self.s.get(self.i) == Some(&b'{') {
            return self.group();
        }
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(Rational::parse_decimal)
    }

    fn group(&mut self) -> Option<Rational> {
        if !self.eat("{") {
            return None;
        }
        let v = self.expr()?;
        self.eat("}").then_some(v)
    }
}

/// Top-level elements of a bracketed tuple / interval: `(1,\frac{1}{2}]` → `("(", ["1",
/// "\frac{1}{2}"], "]")`.
fn tuple_parts(s: &str) -> Option<(char, Vec<&str>, char)> {
    let open = s.chars().next()?;
    let close = s.chars().last()?;
    if !"([".contains(open) || !")]".contains(close) || s.len() < 2 {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    (parts.len() > 1).then_some((open, parts, close))
}

fn normalized_equivalent(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if let (Some(x), Some(y)) = (evaluate(a), evaluate(b)) {
        return x == y;
    }
    match (tuple_parts(a), tuple_parts(b)) {
        (Some((oa, pa, ca)), Some((ob, pb, cb))) => {
            oa == ob
                && ca == cb
                && pa.len() == pb.len()
                && pa.iter().zip(&pb).all(|(x, y)| normalized_equivalent(x, y))
        }
        _ => false,
    }
}

/// Whether two answers are equivalent (see the module doc).
pub fn equivalent(a: &str, b: &str) -> bool {
    normalized_equivalent(&normalize(a), &normalize(b))
}

/// The expected answer from a ground truth: a string (its last `\boxed{}` if it has one, so a
/// full MATH solution works) or a number.
pub fn parse_ground_truth(gt: &serde_json::Value) -> Result<String, VerifyError> {
    let text = match gt {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(VerifyError::BadGroundTruth(format!(
                "math expects the answer as a string or number, got {other}"
            )))
        }
    };
    let answer = last_boxed(&text).unwrap_or(text);
    if normalize(&answer).is_empty() {
        return Err(VerifyError::BadGroundTruth(format!(
            "math answer {answer:?} is empty after normalisation"
        )));
    }
    Ok(answer)
}

/// Whether the answer extracted from `response` is equivalent to `expected`.
pub fn is_correct(response: &str, expected: &str) -> bool {
    extract_answer(response).is_some_and(|a| equivalent(&a, expected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extraction_order_and_balanced_braces() {
        assert_eq!(
            extract_answer("so $x=2$ and \\boxed{\\frac{1}{2}} then \\boxed{\\frac{3}{4}}.")
                .as_deref(),
            Some("\\frac{3}{4}")
        );
        assert_eq!(
            extract_answer("thus \\boxed{\\{1, 2\\}}").as_deref(),
            Some("\\{1, 2\\}")
        );
        assert_eq!(extract_answer("\\boxed 5$").as_deref(), Some("5"));
        // unbalanced last box: fall back to the earlier one
        assert_eq!(
            extract_answer("\\boxed{7} and \\boxed{8").as_deref(),
            Some("7")
        );
        assert_eq!(
            extract_answer(
                "Final Answer: The final answer is $\\frac{2}{3}$. I hope it is correct."
            )
            .as_deref(),
            Some("\\frac{2}{3}")
        );
        assert_eq!(
            extract_answer("The final answer is 42. I hope it is correct.").as_deref(),
            Some("42")
        );
        assert_eq!(
            extract_answer("we get $a+b$ and then $$\\sqrt{2}$$ costs \\$5").as_deref(),
            Some("\\sqrt{2}")
        );
        assert_eq!(extract_answer("no answer at all"), None);
        assert_eq!(extract_answer("\\boxed{}"), Some(String::new()));
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize("\\left( 3, \\dfrac{1}{2} \\right)"),
            "(3,\\frac{1}{2})"
        );
        assert_eq!(normalize("90^\\circ"), "90");
        assert_eq!(normalize("10\\text{ inches}"), "10");
        assert_eq!(normalize("\\text{(A)}"), "(A)");
        assert_eq!(normalize("x = 5."), "5");
        assert_eq!(normalize("\\$ 4.50"), "4.50");
        assert_eq!(normalize("50\\%"), "50");
        assert_eq!(normalize(".5"), "\\frac{1}{2}");
        assert_eq!(normalize("\\sqrt3"), "\\sqrt{3}");
        assert_eq!(normalize("\\frac12"), "\\frac{1}{2}");
        assert_eq!(normalize("\\tfrac1{2}"), "\\frac{1}{2}");
        assert_eq!(normalize("3/4"), "\\frac{3}{4}");
        assert_eq!(normalize("1\\,000"), "1000");
        assert_eq!(normalize("y = 2x + 1"), "2x+1");
        // a long left-hand side stays: it is part of the answer
        assert_eq!(normalize("x+y=3"), "x+y=3");
    }

    #[test]
    fn evaluation() {
        let v = |s: &str| evaluate(&normalize(s));
        let r = |n, d| Rational::new(n, d);
        assert_eq!(v("\\frac{6}{8}"), r(3, 4));
        assert_eq!(v("-\\frac{1}{2}+1"), r(1, 2));
        assert_eq!(v("2\\cdot(3+4)"), r(14, 1));
        assert_eq!(v("7\\div 2"), r(7, 2));
        assert_eq!(v("1,000,000"), r(1_000_000, 1));
        assert_eq!(v("\\frac{\\frac{1}{2}}{3}"), r(1, 6));
        assert_eq!(v("1/0"), None);
        assert_eq!(v("\\sqrt{2}"), None);
        assert_eq!(v("2x"), None);
        assert_eq!(v("(1,2)"), None);
    }

    #[test]
    fn equivalence_passes_and_fails() {
        for (a, b) in [
            ("\\frac{1}{2}", "0.5"),
            ("\\dfrac{3}{6}", "1/2"),
            ("18.0", "18"),
            ("\\boxed{x}", "\\boxed{x}"),
            ("10\\%", "10"),
            ("x=-3", "-3"),
            ("(1, \\frac{1}{2})", "\\left(1,0.5\\right)"),
            ("[2,\\infty)", "[2, \\infty)"),
            ("\\sqrt{3}", "\\sqrt3"),
            ("1{,}000", "1000"),
            ("2+3\\times4", "14"),
        ] {
            assert!(equivalent(a, b), "{a} ≡ {b}");
        }
        for (a, b) in [
            ("\\frac{1}{3}", "0.33"),
            ("(1,2)", "[1,2]"),
            ("(1,2)", "(2,1)"),
            ("\\sqrt{8}", "2\\sqrt{2}"),
            ("2x+2", "2(x+1)"),
            ("5", "-5"),
        ] {
            assert!(!equivalent(a, b), "{a} ≢ {b}");
        }
    }

    #[test]
    fn whole_check() {
        let gt = parse_ground_truth(&json!("So the sum is $\\boxed{\\frac{7}{2}}$.")).unwrap();
        assert_eq!(gt, "\\frac{7}{2}");
        assert!(is_correct("Adding gives \\boxed{3.5}.", &gt));
        assert!(is_correct("The final answer is $7/2$.", &gt));
        assert!(!is_correct("Adding gives \\boxed{3.4}.", &gt));
        assert!(!is_correct("I cannot solve this.", &gt));
        assert!(parse_ground_truth(&json!(12)).is_ok());
        assert!(parse_ground_truth(&json!("")).is_err());
        assert!(parse_ground_truth(&json!(null)).is_err());
    }
}
