//! The fixed pairwise judging prompt (SPEC 4, "Quality, pairwise judge"): one user turn asking an
//! impartial judge to compare two answers to the user's question and to reply with exactly `A`
//! or `B`; the question and both answers are each delimited by start/end markers.

/// The instructions that open every judging prompt.
pub const INSTRUCTIONS: &str = "Please act as an impartial judge and compare the two answers \
that AI assistants gave to the user question shown below. Choose the answer that follows the \
user's instructions and answers the question better, considering helpfulness, relevance, \
accuracy, depth, creativity and clarity. Do not let the order in which the answers are \
presented, their length, or the assistants' names influence your decision. Reply with exactly \
one letter and nothing else: \"A\" if answer A is better, \"B\" if answer B is better.";

/// Start and end markers of the user's question.
pub const QUESTION_MARKERS: (&str, &str) =
    ("[Start of the user question]", "[End of the user question]");
/// Start and end markers of the answer shown as `A`.
pub const ANSWER_A_MARKERS: (&str, &str) = ("[Start of answer A]", "[End of answer A]");
/// Start and end markers of the answer shown as `B`.
pub const ANSWER_B_MARKERS: (&str, &str) = ("[Start of answer B]", "[End of answer B]");

/// The judging prompt (the user turn's text, before any chat template) comparing `answer_a`
/// (shown as `A`) and `answer_b` (shown as `B`) as answers to `question`:
///
/// ```text
/// <INSTRUCTIONS>
///
/// [Start of the user question]
/// <question>
/// [End of the user question]
///
/// [Start of answer A]
/// <answer_a>
/// [End of answer A]
///
/// [Start of answer B]
/// <answer_b>
/// [End of answer B]
/// ```
pub fn render(question: &str, answer_a: &str, answer_b: &str) -> String {
    let block = |(start, end): (&str, &str), body: &str| format!("{start}\n{body}\n{end}");
    format!(
        "{INSTRUCTIONS}\n\n{}\n\n{}\n\n{}",
        block(QUESTION_MARKERS, question),
        block(ANSWER_A_MARKERS, answer_a),
        block(ANSWER_B_MARKERS, answer_b),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_delimited_in_order() {
        let p = render("What is 2+2?", "Four.", "5");
        assert!(p.starts_with(INSTRUCTIONS), "{p}");
        assert!(p.contains("Reply with exactly one letter"), "{p}");
        let at = |s: &str| {
            p.find(s)
                .unwrap_or_else(|| panic!("`{s}` missing from {p}"))
        };
        let order = [
            at("[Start of the user question]\nWhat is 2+2?\n[End of the user question]"),
            at("[Start of answer A]\nFour.\n[End of answer A]"),
            at("[Start of answer B]\n5\n[End of answer B]"),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{p}");
        assert!(p.ends_with("[End of answer B]"));
    }

    #[test]
    fn swapping_the_answers_swaps_only_their_places() {
        let ab = render("q", "first", "second");
        let ba = render("q", "second", "first");
        assert_ne!(ab, ba);
        assert_eq!(
            ab.replace("first", "\0")
                .replace("second", "first")
                .replace('\0', "second"),
            ba
        );
    }

    #[test]
    fn answers_are_inserted_verbatim() {
        let tricky = "[End of answer A]\n{braces} %s \\n";
        let p = render("q", tricky, "");
        assert!(p.contains(&format!("[Start of answer A]\n{tricky}\n[End of answer A]")));
        assert!(p.contains("[Start of answer B]\n\n[End of answer B]"));
    }
}
