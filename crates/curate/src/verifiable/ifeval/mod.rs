//! IFEval-style instruction checks (Zhou et al. 2023, "Instruction-Following Evaluation for
//! Large Language Models"): each instruction is a function of the response and its arguments;
//! a response scores 1 when it is non-empty and follows every instruction (the reference
//! harness's *strict* mode; its *loose* mode, which also tries the response without its first /
//! last line and without `*`, is not implemented).
//!
//! Ground truth is the IFEval record format:
//! `{"instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
//!   "kwargs": [{}, {"num_words": 100, "relation": "at least"}]}` — `kwargs[i]` holds the
//! arguments of instruction `i`; as in the reference harness a `null`, `""`, `0`, `false` or
//! empty list argument counts as absent (so records that list every key with `null` work). A
//! missing required argument, an unknown argument, an unknown instruction id or a value out of
//! range is an error (the reference would draw a random value instead).
//!
//! Semantics follow the reference implementation's code; where it relies on NLTK or
//! `langdetect` adasamp uses a stated rule instead:
//! * sentences (`length_constraints:number_sentences`): NLTK's Punkt is replaced by a rule: a
//!   sentence ends at a run of `.` `!` `?` (plus closing quotes / brackets) followed by
//!   whitespace or the end, except after a common abbreviation (Mr, Dr, e.g., etc., …) or a
//!   single letter (an initial);
//! * capital words (`change_case:capital_word_frequency`): NLTK's word tokenizer is replaced by
//!   runs of letters / digits joined by inner hyphens (a hyphenated word is one word, as the
//!   reference notes); a word counts when it has an upper-case letter and no lower-case one;
//! * language (`language:response_language`, and "in English" of `english_capital` /
//!   `english_lowercase`): see [`super::language`] — some languages are refused as not
//!   checkable when the ground truth is read;
//! * keywords, and a postscript marker other than `P.S.` / `P.P.S`, are matched literally and
//!   case-insensitively (the reference compiles them as regular expressions; IFEval's are plain
//!   words).

use serde_json::{Map, Value};

use super::language;
use super::VerifyError;
use text::*;

mod text;

/// `less than` / `at least`, the two comparisons IFEval uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// `count < n`.
    LessThan,
    /// `count >= n`.
    AtLeast,
}

impl Relation {
    fn holds(self, count: usize, n: usize) -> bool {
        match self {
            Relation::LessThan => count < n,
            Relation::AtLeast => count >= n,
        }
    }
}

/// One instruction with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    /// `keywords:existence`: every keyword appears (case-insensitive).
    KeywordsExist(Vec<String>),
    /// `keywords:frequency`: occurrences of the keyword (case-insensitive) compared with `n`.
    KeywordFrequency(String, Relation, usize),
    /// `keywords:forbidden_words`: no forbidden word as a whole word (case-insensitive).
    ForbiddenWords(Vec<String>),
    /// `keywords:letter_frequency`: occurrences of the letter (case-insensitive) compared with `n`.
    LetterFrequency(char, Relation, usize),
    /// `language:response_language`: the whole response in the language (ISO 639-1 code).
    ResponseLanguage(String),
    /// `length_constraints:number_sentences`.
    NumberSentences(Relation, usize),
    /// `length_constraints:number_paragraphs`: exactly `n` paragraphs separated by `***`.
    NumberParagraphs(usize),
    /// `length_constraints:number_words`: `\w+` words compared with `n`.
    NumberWords(Relation, usize),
    /// `length_constraints:nth_paragraph_first_word`: exactly `num_paragraphs` paragraphs
    /// separated by blank lines, paragraph `nth` (1-based) starting with `first_word`.
    NthParagraphFirstWord {
        /// Paragraphs required.
        num_paragraphs: usize,
        /// Which paragraph (1-based).
        nth: usize,
        /// Its first word, lower case.
        first_word: String,
    },
    /// `detectable_content:number_placeholders`: at least `n` `[…]` placeholders.
    NumberPlaceholders(usize),
    /// `detectable_content:postscript`: a postscript starting with the marker (`P.S.`, `P.P.S`).
    Postscript(String),
    /// `detectable_format:number_bullet_lists`: exactly `n` markdown bullets (`*` or `-` lines).
    NumberBulletLists(usize),
    /// `detectable_format:constrained_response`: "My answer is yes." / "… no." / "… maybe.".
    ConstrainedResponse,
    /// `detectable_format:number_highlighted_sections`: at least `n` `*highlighted*` sections.
    NumberHighlightedSections(usize),
    /// `detectable_format:multiple_sections`: at least `n` sections marked `<splitter> <number>`.
    MultipleSections(String, usize),
    /// `detectable_format:json_format`: the whole response is JSON (optionally in ``` fences).
    JsonFormat,
    /// `detectable_format:title`: a title in double angular brackets, `<<title>>`.
    Title,
    /// `combination:two_responses`: two different responses separated by `******`.
    TwoResponses,
    /// `combination:repeat_prompt`: the response starts with the request, repeated verbatim.
    RepeatPrompt(String),
    /// `startend:end_checker`: the response ends with the phrase.
    EndChecker(String),
    /// `startend:quotation`: the whole response wrapped in double quotation marks.
    Quotation,
    /// `change_case:capital_word_frequency`: all-capital words compared with `n`.
    CapitalWordFrequency(Relation, usize),
    /// `change_case:english_capital`: English, all capital letters.
    EnglishCapital,
    /// `change_case:english_lowercase`: English, all lower-case letters.
    EnglishLowercase,
    /// `punctuation:no_comma`: no comma at all.
    NoComma,
}

/// Every instruction id this module checks (the IFEval registry's 25).
pub const INSTRUCTION_IDS: &[&str] = &[
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "startend:quotation",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
];

/// The options of `detectable_format:constrained_response`.
const CONSTRAINED_OPTIONS: [&str; 3] = [
    "My answer is yes.",
    "My answer is no.",
    "My answer is maybe.",
];

/// An instruction's arguments as read from `kwargs`, each taken once; what is left over is an
/// unknown argument.
struct Args<'a> {
    id: &'a str,
    map: Map<String, Value>,
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

impl<'a> Args<'a> {
    fn new(id: &'a str, kwargs: Option<&Value>) -> Result<Self, VerifyError> {
        let map = match kwargs {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m
                .iter()
                .filter(|(_, v)| truthy(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Some(other) => {
                return Err(VerifyError::BadGroundTruth(format!(
                    "kwargs of {id}: expected an object, got {other}"
                )))
            }
        };
        Ok(Self { id, map })
    }

    fn bad(&self, name: &str, message: impl std::fmt::Display) -> VerifyError {
        VerifyError::BadGroundTruth(format!("{} argument `{name}`: {message}", self.id))
    }

    fn take(&mut self, name: &str) -> Result<Value, VerifyError> {
        self.map.remove(name).ok_or_else(|| {
            self.bad(
                name,
                "missing (null, \"\", 0 and [] count as missing, as in the reference harness)",
            )
        })
    }

    fn count(&mut self, name: &str) -> Result<usize, VerifyError> {
        let v = self.take(name)?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.bad(name, format!("expected a non-negative integer, got {v}")))
    }

    fn text(&mut self, name: &str) -> Result<String, VerifyError> {
        match self.take(name)? {
            Value::String(s) if !s.trim().is_empty() => Ok(s),
            v => Err(self.bad(name, format!("expected a non-empty string, got {v}"))),
        }
    }

    fn texts(&mut self, name: &str) -> Result<Vec<String>, VerifyError> {
        let v = self.take(name)?;
        let list: Option<Vec<String>> = v.as_array().and_then(|a| {
            a.iter()
                .map(|x| x.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                .collect()
        });
        list.ok_or_else(|| {
            self.bad(
                name,
                format!("expected a list of non-empty strings, got {v}"),
            )
        })
    }

    fn relation(&mut self, name: &str) -> Result<Relation, VerifyError> {
        match self.take(name)? {
            Value::String(s) if s == "less than" => Ok(Relation::LessThan),
            Value::String(s) if s == "at least" => Ok(Relation::AtLeast),
            v => Err(self.bad(
                name,
                format!("expected \"less than\" or \"at least\", got {v}"),
            )),
        }
    }

    fn finish(self, instruction: Instruction) -> Result<Instruction, VerifyError> {
        match self.map.keys().next() {
            Some(k) => Err(VerifyError::BadGroundTruth(format!(
                "{}: unknown argument `{k}`",
                self.id
            ))),
            None => Ok(instruction),
        }
    }
}

impl Instruction {
    /// Reads instruction `id` with its arguments `kwargs` (an object, or absent).
    pub fn parse(id: &str, kwargs: Option<&Value>) -> Result<Self, VerifyError> {
        use Instruction as I;
        let mut a = Args::new(id, kwargs)?;
        let ins = match id {
            "keywords:existence" => I::KeywordsExist(a.texts("keywords")?),
            "keywords:frequency" => I::KeywordFrequency(
                a.text("keyword")?.trim().to_string(),
                a.relation("relation")?,
                a.count("frequency")?,
            ),
            "keywords:forbidden_words" => I::ForbiddenWords(a.texts("forbidden_words")?),
            "keywords:letter_frequency" => {
                let letter = a.text("letter")?;
                let mut chars = letter.trim().chars();
                let c = match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_alphabetic() => c,
                    _ => {
                        return Err(a.bad("letter", format!("expected one letter, got {letter:?}")))
                    }
                };
                let lower = c.to_lowercase().next().unwrap_or(c);
                I::LetterFrequency(
                    lower,
                    a.relation("let_relation")?,
                    a.count("let_frequency")?,
                )
            }
            "language:response_language" => {
                let code = a.text("language")?;
                language::checkable(&code).map_err(|m| a.bad("language", m))?;
                I::ResponseLanguage(code)
            }
            "length_constraints:number_sentences" => {
                I::NumberSentences(a.relation("relation")?, a.count("num_sentences")?)
            }
            "length_constraints:number_paragraphs" => {
                I::NumberParagraphs(a.count("num_paragraphs")?)
            }
            "length_constraints:number_words" => {
                I::NumberWords(a.relation("relation")?, a.count("num_words")?)
            }
            "length_constraints:nth_paragraph_first_word" => {
                let num_paragraphs = a.count("num_paragraphs")?;
                let nth = a.count("nth_paragraph")?;
                if nth > num_paragraphs {
                    return Err(a.bad(
                        "nth_paragraph",
                        format!("{nth} > num_paragraphs {num_paragraphs}"),
                    ));
                }
                let first_word = a.text("first_word")?.to_lowercase();
                I::NthParagraphFirstWord {
                    num_paragraphs,
                    nth,
                    first_word,
                }
            }
            "detectable_content:number_placeholders" => {
                I::NumberPlaceholders(a.count("num_placeholders")?)
            }
            "detectable_content:postscript" => {
                I::Postscript(a.text("postscript_marker")?.trim().to_string())
            }
            "detectable_format:number_bullet_lists" => {
                I::NumberBulletLists(a.count("num_bullets")?)
            }
            "detectable_format:constrained_response" => I::ConstrainedResponse,
            "detectable_format:number_highlighted_sections" => {
                I::NumberHighlightedSections(a.count("num_highlights")?)
            }
            "detectable_format:multiple_sections" => I::MultipleSections(
                a.text("section_spliter")?.trim().to_string(),
                a.count("num_sections")?,
            ),
            "detectable_format:json_format" => I::JsonFormat,
            "detectable_format:title" => I::Title,
            "combination:two_responses" => I::TwoResponses,
            "combination:repeat_prompt" => I::RepeatPrompt(a.text("prompt_to_repeat")?),
            "startend:end_checker" => I::EndChecker(a.text("end_phrase")?.trim().to_string()),
            "startend:quotation" => I::Quotation,
            "change_case:capital_word_frequency" => I::CapitalWordFrequency(
                a.relation("capital_relation")?,
                a.count("capital_frequency")?,
            ),
            "change_case:english_capital" => I::EnglishCapital,
            "change_case:english_lowercase" => I::EnglishLowercase,
            "punctuation:no_comma" => I::NoComma,
            other => {
                return Err(VerifyError::BadGroundTruth(format!(
                    "unknown instruction id {other:?} (known: {})",
                    INSTRUCTION_IDS.join(", ")
                )))
            }
        };
        a.finish(ins)
    }

    /// Whether `response` follows this instruction.
    pub fn followed(&self, response: &str) -> bool {
        use Instruction as I;
        match self {
            I::KeywordsExist(words) => {
                let lower = response.to_lowercase();
                words.iter().all(|w| lower.contains(&w.to_lowercase()))
            }
            I::KeywordFrequency(word, rel, n) => {
                let count = response
                    .to_lowercase()
                    .matches(&word.to_lowercase())
                    .count();
                rel.holds(count, *n)
            }
            I::ForbiddenWords(words) => words.iter().all(|w| !contains_whole_word(response, w)),
            I::LetterFrequency(letter, rel, n) => {
                let count = response
                    .to_lowercase()
                    .chars()
                    .filter(|c| c == letter)
                    .count();
                rel.holds(count, *n)
            }
            I::ResponseLanguage(code) => language::is_language(response, code),
            I::NumberSentences(rel, n) => rel.holds(count_sentences(response), *n),
            I::NumberParagraphs(n) => separated_parts(response, "***") == Some(*n),
            I::NumberWords(rel, n) => rel.holds(count_words(response), *n),
            I::NthParagraphFirstWord {
                num_paragraphs,
                nth,
                first_word,
            } => nth_paragraph_first_word(response, *num_paragraphs, *nth, first_word),
            I::NumberPlaceholders(n) => count_placeholders(response) >= *n,
            I::Postscript(marker) => has_postscript(response, marker),
            I::NumberBulletLists(n) => count_bullets(response) == *n,
            I::ConstrainedResponse => {
                let t = response.trim();
                CONSTRAINED_OPTIONS.iter().any(|o| t.contains(o))
            }
            I::NumberHighlightedSections(n) => count_highlights(response) >= *n,
            I::MultipleSections(splitter, n) => count_sections(response, splitter) >= *n,
            I::JsonFormat => is_json(response),
            I::Title => has_title(response),
            I::TwoResponses => two_responses(response),
            I::RepeatPrompt(prompt) => response
                .trim()
                .to_lowercase()
                .starts_with(&prompt.trim().to_lowercase()),
            I::EndChecker(phrase) => response
                .trim()
                .trim_matches('"')
                .to_lowercase()
                .ends_with(&phrase.trim().to_lowercase()),
            I::Quotation => {
                let t = response.trim();
                t.chars().count() > 1 && t.starts_with('"') && t.ends_with('"')
            }
            I::CapitalWordFrequency(rel, n) => {
                let count = capital_words(response).filter(|w| is_upper(w)).count();
                rel.holds(count, *n)
            }
            I::EnglishCapital => is_upper(response) && language::is_language(response, "en"),
            I::EnglishLowercase => is_lower(response) && language::is_language(response, "en"),
            I::NoComma => !response.contains(','),
        }
    }
}

/// A ground truth's instructions, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Instructions {
    /// `(instruction id, instruction)`.
    pub list: Vec<(String, Instruction)>,
}

impl Instructions {
    /// Whether `response` is non-empty and follows every instruction (strict mode).
    pub fn all_followed(&self, response: &str) -> bool {
        !response.trim().is_empty() && self.list.iter().all(|(_, i)| i.followed(response))
    }
}

/// Reads a ground truth in the IFEval record format (see the module doc).
pub fn parse_ground_truth(gt: &Value) -> Result<Instructions, VerifyError> {
    let bad = |m: String| VerifyError::BadGroundTruth(m);
    let obj = gt.as_object().ok_or_else(|| {
        bad(format!(
            "ifeval expects {{\"instruction_id_list\": [...], \"kwargs\": [...]}}, got {gt}"
        ))
    })?;
    let ids = obj
        .get("instruction_id_list")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("ifeval: `instruction_id_list` missing or not a list".into()))?;
    if ids.is_empty() {
        return Err(bad("ifeval: `instruction_id_list` is empty".into()));
    }
    let kwargs = match obj.get("kwargs") {
        None | Some(Value::Null) => None,
        Some(Value::Array(k)) if k.len() == ids.len() => Some(k),
        Some(other) => {
            return Err(bad(format!(
                "ifeval: `kwargs` must be a list with one object per instruction ({}), got {other}",
                ids.len()
            )))
        }
    };
    let mut list = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = id
            .as_str()
            .ok_or_else(|| bad(format!("ifeval: instruction id {id} is not a string")))?;
        let ins = Instruction::parse(id, kwargs.map(|k| &k[i]))?;
        list.push((id.to_string(), ins));
    }
    Ok(Instructions { list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The instruction `id` with `kwargs`, checked on a passing and a failing response.
    fn check(id: &str, kwargs: Value, pass: &str, fail: &str) {
        let ins = Instruction::parse(id, Some(&kwargs)).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert!(ins.followed(pass), "{id} should pass: {pass:?}");
        assert!(!ins.followed(fail), "{id} should fail: {fail:?}");
    }

    #[test]
    fn keywords() {
        check(
            "keywords:existence",
            json!({"keywords": ["ocean", "Salt"]}),
            "The OCEAN is salty.",
            "The ocean is blue.",
        );
        check(
            "keywords:frequency",
            json!({"keyword": "tea", "frequency": 3, "relation": "at least"}),
            "Tea, tea and more TEA.",
            "tea and tea",
        );
        check(
            "keywords:frequency",
            json!({"keyword": "tea", "frequency": 2, "relation": "less than"}),
            "just tea",
            "tea tea",
        );
        check(
            "keywords:forbidden_words",
            json!({"forbidden_words": ["cat", "dog"]}),
            "A category of concatenated hotdogs.",
            "My Dog barks.",
        );
        check(
            "keywords:letter_frequency",
            json!({"letter": "Z", "let_frequency": 2, "let_relation": "at least"}),
            "Zebras zoom.",
            "Zebras run.",
        );
        check(
            "keywords:letter_frequency",
            json!({"letter": "e", "let_frequency": 3, "let_relation": "less than"}),
            "Hello",
            "Eerie evening",
        );
    }

    #[test]
    fn lengths() {
        check(
            "length_constraints:number_words",
            json!({"num_words": 5, "relation": "at least"}),
            "one two three four_4 five",
            "one two, three-four",
        );
        check(
            "length_constraints:number_words",
            json!({"num_words": 3, "relation": "less than"}),
            "two words",
            "one two three",
        );
        check(
            "length_constraints:number_sentences",
            json!({"num_sentences": 3, "relation": "less than"}),
            "Dr. Smith went home. He slept.",
            "One. Two! Three?",
        );
        check(
            "length_constraints:number_sentences",
            json!({"num_sentences": 2, "relation": "at least"}),
            "It costs 3.5 dollars. Buy it",
            "It costs 3.5 dollars, e.g. for J. Smith.",
        );
        check(
            "length_constraints:number_paragraphs",
            json!({"num_paragraphs": 3}),
            "one\n***\ntwo\n***\nthree\n***\n",
            "one\n***\n\n***\ntwo\n***\nthree",
        );
        check(
            "length_constraints:number_paragraphs",
            json!({"num_paragraphs": 2}),
            "***one***two",
            "one***two***three",
        );
        check(
            "length_constraints:nth_paragraph_first_word",
            json!({"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "Because"}),
            "Intro.\n\n\"Because, reasons.\n\nEnd.",
            "Intro.\n\nSince reasons.\n\nEnd.",
        );
        check(
            "length_constraints:nth_paragraph_first_word",
            json!({"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "hi"}),
            "Hi all.\n\nBye.",
            "Hi all.\n\nBye.\n\nAgain.",
        );
    }

    #[test]
    fn content_and_format() {
        check(
            "detectable_content:number_placeholders",
            json!({"num_placeholders": 2}),
            "Dear [name], at [address [x]] ok",
            "Dear [name], at [address\n]",
        );
        check(
            "detectable_content:postscript",
            json!({"postscript_marker": "P.S."}),
            "Bye.\np. s. see you",
            "Bye.\nPS see you",
        );
        check(
            "detectable_content:postscript",
            json!({"postscript_marker": "P.P.S"}),
            "Bye.\nP.P.S. more",
            "Bye.\nP.S. more",
        );
        check(
            "detectable_content:postscript",
            json!({"postscript_marker": "Note:"}),
            "text\nNOTE: x",
            "text\nN.B. x",
        );
        check(
            "detectable_format:number_bullet_lists",
            json!({"num_bullets": 3}),
            "* a\n  * b\n- c\n**bold**",
            "* a\n* b",
        );
        check(
            "detectable_format:constrained_response",
            json!({}),
            "Hmm. My answer is maybe.",
            "My answer is perhaps.",
        );
        check(
            "detectable_format:number_highlighted_sections",
            json!({"num_highlights": 2}),
            "*one* and **two**",
            "**one** and * * and *a\nb*",
        );
        check(
            "detectable_format:multiple_sections",
            json!({"section_spliter": "SECTION", "num_sections": 2}),
            "SECTION 1\na\nSECTION2\nb",
            "SECTION 1\na\nSECTION two\nb",
        );
        check(
            "detectable_format:json_format",
            json!({}),
            "```json\n{\"a\": [1, 2]}\n```",
            "Here: {\"a\": 1}",
        );
        check(
            "detectable_format:title",
            json!({}),
            "<<A Poem of Joy>>\nlines",
            "<< >> and <<\n>>",
        );
        check(
            "combination:two_responses",
            json!({}),
            "First answer.\n******\nSecond answer.",
            "Same.\n******\nSame.",
        );
        check(
            "combination:repeat_prompt",
            json!({"prompt_to_repeat": "Write a haiku."}),
            "  write a HAIKU. Leaves fall.",
            "Sure! Write a haiku. Leaves fall.",
        );
        check(
            "startend:end_checker",
            json!({"end_phrase": "Any other questions?"}),
            "Done. any other questions?\"",
            "Any other questions? Bye.",
        );
        check("startend:quotation", json!({}), " \"Hello.\" ", "\"Hello.");
        check(
            "punctuation:no_comma",
            json!({}),
            "No commas here.",
            "One, two.",
        );
    }

    #[test]
    fn case_and_language() {
        check(
            "change_case:capital_word_frequency",
            json!({"capital_frequency": 2, "capital_relation": "at least"}),
            "The WELL-KNOWN USA team",
            "The Well-known USA team",
        );
        check(
            "change_case:capital_word_frequency",
            json!({"capital_frequency": 2, "capital_relation": "less than"}),
            "Only ONE here",
            "TWO WORDS",
        );
        check(
            "change_case:english_capital",
            json!({}),
            "THIS IS THE ANSWER TO YOUR QUESTION.",
            "THIS IS the ANSWER TO YOUR QUESTION.",
        );
        check(
            "change_case:english_lowercase",
            json!({}),
            "this is the answer to your question.",
            "This is the answer.",
        );
        assert!(
            !Instruction::EnglishLowercase.followed("el gato está en la casa y no quiere salir.")
        );
        check(
            "language:response_language",
            json!({"language": "fr"}),
            "Je pense que le chat est dans la maison.",
            "I think that the cat is in the house.",
        );
        check(
            "language:response_language",
            json!({"language": "ko"}),
            "저는 고양이를 좋아합니다.",
            "I like cats.",
        );
    }

    #[test]
    fn ground_truth_format_and_strict_score() {
        let gt = json!({
            "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words", "startend:quotation"],
            "kwargs": [{"num_words": null, "keyword": null}, {"num_words": 3, "relation": "at least"}, {}]
        });
        let ins = parse_ground_truth(&gt).unwrap();
        assert_eq!(ins.list.len(), 3);
        assert!(ins.all_followed("\"one two three\""));
        assert!(!ins.all_followed("\"one, two, three\""));
        assert!(!ins.all_followed("\"one two\""));
        let gt = json!({"instruction_id_list": ["detectable_format:json_format"]});
        let ins = parse_ground_truth(&gt).unwrap();
        assert!(ins.all_followed("[1]"));
        // strict mode: an empty response follows nothing
        let gt = json!({"instruction_id_list": ["keywords:forbidden_words"], "kwargs": [{"forbidden_words": ["x"]}]});
        assert!(!parse_ground_truth(&gt).unwrap().all_followed("   "));
    }

    #[test]
    fn malformed_ground_truths_name_the_problem() {
        let err = |gt: Value| parse_ground_truth(&gt).unwrap_err().to_string();
        assert!(err(json!("no_comma")).contains("instruction_id_list"));
        assert!(err(json!({"instruction_id_list": []})).contains("empty"));
        assert!(err(json!({"instruction_id_list": ["x:y"], "kwargs": [{}]}))
            .contains("unknown instruction id \"x:y\""));
        assert!(
            err(json!({"instruction_id_list": ["punctuation:no_comma"], "kwargs": []}))
                .contains("one object per instruction")
        );
        let e = err(
            json!({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 5}]}),
        );
        assert!(e.contains("relation") && e.contains("missing"), "{e}");
        let e = err(
            json!({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 5, "relation": "at most"}]}),
        );
        assert!(e.contains("at most"), "{e}");
        let e =
            err(json!({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{"nums": 5}]}));
        assert!(e.contains("unknown argument `nums`"), "{e}");
        let e = err(
            json!({"instruction_id_list": ["language:response_language"], "kwargs": [{"language": "ru"}]}),
        );
        assert!(e.contains("not checkable"), "{e}");
        let e = err(
            json!({"instruction_id_list": ["keywords:letter_frequency"], "kwargs": [{"letter": "ab", "let_frequency": 2, "let_relation": "at least"}]}),
        );
        assert!(e.contains("one letter"), "{e}");
        let e = err(
            json!({"instruction_id_list": ["length_constraints:nth_paragraph_first_word"], "kwargs": [{"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}]}),
        );
        assert!(e.contains("nth_paragraph"), "{e}");
    }

    #[test]
    fn every_registered_id_parses() {
        let kwargs = json!({
            "keywords": ["a"], "keyword": "a", "frequency": 1, "relation": "at least",
            "forbidden_words": ["a"], "letter": "a", "let_frequency": 1, "let_relation": "at least",
            "language": "en", "num_sentences": 1, "num_paragraphs": 1, "num_words": 1,
            "nth_paragraph": 1, "first_word": "a", "num_placeholders": 1, "postscript_marker": "P.S.",
            "num_bullets": 1, "num_highlights": 1, "section_spliter": "Section", "num_sections": 1,
            "prompt_to_repeat": "a", "end_phrase": "a", "capital_frequency": 1, "capital_relation": "at least"
        });
        for id in INSTRUCTION_IDS {
            // Give each instruction only the arguments it asks for: parse with all, read the
            // error's unknown argument, drop it, repeat.
            let mut k = kwargs.as_object().unwrap().clone();
            loop {
                match Instruction::parse(id, Some(&Value::Object(k.clone()))) {
                    Ok(_) => break,
                    Err(e) => {
                        let msg = e.to_string();
                        let name = msg
                            .split("unknown argument `")
                            .nth(1)
                            .and_then(|s| s.split('`').next())
                            .unwrap_or_else(|| panic!("{id}: {msg}"))
                            .to_string();
                        k.remove(&name);
                    }
                }
            }
        }
    }
}
