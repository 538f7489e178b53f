//! The text measurements behind the IFEval instructions (words, sentences, paragraphs,
//! placeholders, bullets, highlights, sections, titles, …), each as the reference harness
//! measures it unless the parent module's doc says otherwise.

/// A `\w` character: a letter, a digit or `_`.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `\w+` tokens, as the reference's word count.
pub(super) fn count_words(text: &str) -> usize {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| !w.is_empty())
        .count()
}

/// Whether `word` occurs in `text` as a whole word (`\bword\b`), case-insensitively.
pub(super) fn contains_whole_word(text: &str, word: &str) -> bool {
    let hay: Vec<char> = text.to_lowercase().chars().collect();
    let needle: Vec<char> = word.to_lowercase().chars().collect();
    if needle.is_empty() || needle.len() > hay.len() {
        return false;
    }
    (0..=hay.len() - needle.len()).any(|i| {
        hay[i..i + needle.len()] == needle[..]
            && (i == 0 || !is_word_char(hay[i - 1]) || !is_word_char(needle[0]))
            && (i + needle.len() == hay.len()
                || !is_word_char(hay[i + needle.len()])
                || !is_word_char(needle[needle.len() - 1]))
    })
}

/// Words whose period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "inc", "ltd", "co", "vs", "etc", "e.g",
    "i.e", "a.m", "p.m", "no", "fig", "approx", "dept", "est", "capt", "lt", "gen", "sgt",
];

/// Sentences by the rule in the module doc.
pub(super) fn count_sentences(text: &str) -> usize {
    let chars: Vec<char> = text.chars().collect();
    let mut count = 0;
    let mut has_content = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() {
            has_content = true;
        }
        if matches!(c, '.' | '!' | '?') {
            let mut j = i;
            while j < chars.len() && matches!(chars[j], '.' | '!' | '?') {
                j += 1;
            }
            while j < chars.len() && matches!(chars[j], '"' | '\'' | ')' | ']' | '”' | '’') {
                j += 1;
            }
            let at_break = j == chars.len() || chars[j].is_whitespace();
            if at_break && has_content && !(c == '.' && j == i + 1 && is_abbreviation(&chars[..i]))
            {
                count += 1;
                has_content = false;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    count + usize::from(has_content)
}

/// Whether the word right before a period is an abbreviation or an initial.
fn is_abbreviation(before: &[char]) -> bool {
    let start = before
        .iter()
        .rposition(|c| c.is_whitespace() || matches!(c, '(' | '"' | '\''))
        .map_or(0, |p| p + 1);
    let word: String = before[start..].iter().collect::<String>().to_lowercase();
    (word.chars().count() == 1 && word.chars().all(char::is_alphabetic))
        || ABBREVIATIONS.contains(&word.as_str())
}

/// Parts separated by `sep` (leftmost, non-overlapping): empty parts only at either end
/// (dropped); an empty inner part means "not that format" (`None`).
pub(super) fn separated_parts(text: &str, sep: &str) -> Option<usize> {
    let parts: Vec<&str> = text.split(sep).collect();
    let last = parts.len() - 1;
    let mut n = 0;
    for (i, p) in parts.iter().enumerate() {
        if p.trim().is_empty() {
            if i != 0 && i != last {
                return None;
            }
        } else {
            n += 1;
        }
    }
    Some(n)
}

/// Exactly `num_paragraphs` blank-line-separated paragraphs, paragraph `nth` (1-based) starting
/// with `first_word` (lower case; leading quotes and trailing punctuation ignored).
pub(super) fn nth_paragraph_first_word(
    text: &str,
    num_paragraphs: usize,
    nth: usize,
    first_word: &str,
) -> bool {
    let paragraphs: Vec<&str> = text.split("\n\n").collect();
    let count = paragraphs.iter().filter(|p| !p.trim().is_empty()).count();
    if nth == 0 || nth > count {
        return false;
    }
    let paragraph = paragraphs[nth - 1].trim();
    let Some(word) = paragraph.split_whitespace().next() else {
        return false;
    };
    let word = word.trim_start_matches('\'').trim_start_matches('"');
    let got: String = word
        .chars()
        .take_while(|c| !matches!(c, '.' | ',' | '?' | '!' | '\'' | '"'))
        .flat_map(char::to_lowercase)
        .collect();
    count == num_paragraphs && got == first_word
}

/// `[…]` spans within one line, leftmost and non-overlapping.
pub(super) fn count_placeholders(text: &str) -> usize {
    let mut n = 0;
    for line in text.split('\n') {
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            match rest[open + 1..].find(']') {
                Some(close) => {
                    n += 1;
                    rest = &rest[open + 1 + close + 1..];
                }
                None => break,
            }
        }
    }
    n
}

/// Whether a postscript starting with `marker` appears (case-insensitive; `P.S.` / `P.P.S` allow
/// one whitespace after each dot).
pub(super) fn has_postscript(text: &str, marker: &str) -> bool {
    let lower = text.to_lowercase();
    // `p.` then an optional whitespace between the dotted letters, as the reference allows.
    let dotted = |letters: &[&str]| {
        lower.match_indices(letters[0]).any(|(i, m)| {
            let mut rest = &lower[i + m.len()..];
            for l in &letters[1..] {
                rest = rest
                    .strip_prefix(|c: char| c.is_whitespace())
                    .filter(|r| r.starts_with(l))
                    .unwrap_or(rest);
                match rest.strip_prefix(l) {
                    Some(r) => rest = r,
                    None => return false,
                }
            }
            true
        })
    };
    match marker {
        "P.P.S" => dotted(&["p.", "p.", "s"]),
        "P.S." => dotted(&["p.", "s."]),
        other => lower.contains(&other.to_lowercase()),
    }
}

/// Lines whose first non-blank character is `*` followed by another character that is not
/// `*`, or `-`.
pub(super) fn count_bullets(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            let mut cs = t.chars();
            match cs.next() {
                Some('-') => true,
                Some('*') => cs.next().is_some_and(|c| c != '*'),
                _ => false,
            }
        })
        .count()
}

/// `*x*` and `**x**` spans within a line with non-blank content, each style counted
/// separately (as the reference does, so `**x**` counts once as a double highlight).
pub(super) fn count_highlights(text: &str) -> usize {
    fn spans(text: &str, delim: &str) -> usize {
        let mut n = 0;
        let mut i = 0;
        while let Some(off) = text[i..].find(delim) {
            let start = i + off + delim.len();
            let body_len = text[start..]
                .find(['\n', '*'])
                .unwrap_or(text.len() - start);
            let body = &text[start..start + body_len];
            if text[start + body_len..].starts_with(delim) {
                if !body.trim().is_empty() {
                    n += 1;
                }
                i = start + body_len + delim.len();
            } else {
                i = i + off + 1;
            }
        }
        n
    }
    spans(text, "*") + spans(text, "**")
}

/// Occurrences of `splitter` followed by an optional whitespace and a number.
pub(super) fn count_sections(text: &str, splitter: &str) -> usize {
    let mut n = 0;
    let mut i = 0;
    while let Some(off) = text[i..].find(splitter) {
        let after = i + off + splitter.len();
        let rest = &text[after..];
        let rest = rest
            .strip_prefix(|c: char| c.is_whitespace())
            .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or(rest);
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            n += 1;
        }
        i = after;
    }
    n
}

/// Whether the whole text, without surrounding ``` fences, is one JSON value.
pub(super) fn is_json(text: &str) -> bool {
    let mut t = text.trim();
    for fence in ["```json", "```Json", "```JSON", "```"] {
        t = t.strip_prefix(fence).unwrap_or(t);
    }
    let t = t.strip_suffix("```").unwrap_or(t).trim();
    serde_json::from_str::<serde_json::Value>(t).is_ok()
}

/// A line holding `<<…>>` with non-blank content (from the first `<<` to the last `>>`).
pub(super) fn has_title(text: &str) -> bool {
    text.split('\n').any(|line| {
        let (Some(open), Some(close)) = (line.find("<<"), line.rfind(">>")) else {
            return false;
        };
        close >= open + 3
            && !line[open..close + 2]
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .is_empty()
    })
}

/// Two different non-empty responses separated by `******` (empty parts only at either end).
pub(super) fn two_responses(text: &str) -> bool {
    let parts: Vec<&str> = text.split("******").collect();
    let last = parts.len() - 1;
    let mut valid = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if p.trim().is_empty() {
            if i != 0 && i != last {
                return false;
            }
        } else {
            valid.push(p.trim());
        }
    }
    valid.len() == 2 && valid[0] != valid[1]
}

/// Words for the capital-word count: runs of letters / digits joined by inner hyphens.
pub(super) fn capital_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .flat_map(|w| {
            let w = w.trim_matches('-');
            // A run of hyphens splits words (`A--B` is two).
            w.split("--")
        })
        .map(|w| w.trim_matches('-'))
        .filter(|w| !w.is_empty())
}

/// Python's `str.isupper`: at least one cased character and none lower-case.
pub(super) fn is_upper(s: &str) -> bool {
    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)
}

/// Python's `str.islower`: at least one cased character and none upper-case.
pub(super) fn is_lower(s: &str) -> bool {
    s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase)
}
