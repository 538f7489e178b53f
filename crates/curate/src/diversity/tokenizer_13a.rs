//! sacreBLEU's default BLEU tokenizer (`13a`, the mteval-v13a.pl tokenization used by WMT), as
//! its code behaves, including the `rstrip()` BLEU applies to every segment first.
//!
//! sacreBLEU (2.x) does, in order:
//! 1. `line.rstrip()` (Python whitespace),
//! 2. remove `<skipped>`, join `-\n` line breaks, turn `\n` into a space,
//! 3. unescape `&quot;`, `&amp;`, `&lt;`, `&gt;` (in that order, each a plain replace),
//! 4. wrap in spaces and apply four regular expressions, each a left-to-right substitution of
//!    non-overlapping matches:
//!    * `([\{-\~\[-\` -\&\(-\+\:-\@\/])` → ` \1 ` (ASCII punctuation and symbols except
//!      `'`, `,`, `-`, `.`),
//!    * `([^0-9])([\.,])` → `\1 \2 `,
//!    * `([\.,])([^0-9])` → ` \1 \2`,
//!    * `([0-9])(-)` → `\1 \2 `,
//! 5. split on Python whitespace.
//!
//! The regular expressions are spelled out as scans here (no regex engine): each pass consumes
//! a match of two characters at once, exactly as `re.sub` does.

/// Whether Python's `str.isspace()` is true for `c` (what `str.split()` and `str.rstrip()`
/// split on): Unicode `White_Space` plus the ASCII separators U+001C–U+001F.
pub fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The tokens sacreBLEU's `13a` tokenizer makes of one segment (after BLEU's `rstrip()`).
pub fn tokenize_13a(segment: &str) -> Vec<String> {
    let line = segment.trim_end_matches(is_python_whitespace);
    let line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    let line = if line.contains('&') {
        line.replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
    } else {
        line
    };
    let mut chars: Vec<char> = Vec::with_capacity(line.len() + 2);
    chars.push(' ');
    chars.extend(line.chars());
    chars.push(' ');
    let chars = space_symbols(&chars);
    let chars = pair_pass(
        &chars,
        |a, b| !a.is_ascii_digit() && is_period_or_comma(b),
        &[Slot::First, Slot::Space, Slot::Second, Slot::Space],
    );
    let chars = pair_pass(
        &chars,
        |a, b| is_period_or_comma(a) && !b.is_ascii_digit(),
        &[Slot::Space, Slot::First, Slot::Space, Slot::Second],
    );
    let chars = pair_pass(
        &chars,
        |a, b| a.is_ascii_digit() && b == '-',
        &[Slot::First, Slot::Space, Slot::Second, Slot::Space],
    );
    let text: String = chars.into_iter().collect();
    text.split(is_python_whitespace)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_period_or_comma(c: char) -> bool {
    c == '.' || c == ','
}

/// The first pattern's class: `{|}~`, `[\]^_` + backquote, space to `&`, `(` to `+`, `:` to `@`,
/// and `/`.
fn is_spaced_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// Pass 1: ` c ` for every character of the symbol class.
fn space_symbols(chars: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() * 3 / 2);
    for &c in chars {
        if is_spaced_symbol(c) {
            out.extend([' ', c, ' ']);
        } else {
            out.push(c);
        }
    }
    out
}

/// One piece of a two-character pattern's replacement.
#[derive(Clone, Copy)]
enum Slot {
    First,
    Second,
    Space,
}

/// `re.sub` of a two-character pattern `(a)(b)`: scanning left to right, a match at `i`
/// (`matches(chars[i], chars[i + 1])`) is replaced by `replacement` and the scan resumes at
/// `i + 2`; otherwise `chars[i]` is kept and the scan moves one on.
fn pair_pass(
    chars: &[char],
    matches: impl Fn(char, char) -> bool,
    replacement: &[Slot],
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() + chars.len() / 4);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && matches(chars[i], chars[i + 1]) {
            for s in replacement {
                out.push(match s {
                    Slot::First => chars[i],
                    Slot::Second => chars[i + 1],
                    Slot::Space => ' ',
                });
            }
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> Vec<String> {
        tokenize_13a(s)
    }

    #[test]
    fn punctuation_numbers_and_escapes() {
        assert_eq!(tok("Hello, world!"), ["Hello", ",", "world", "!"]);
        assert_eq!(
            tok("It costs $3,000.50."),
            ["It", "costs", "$", "3,000.50", "."]
        );
        assert_eq!(tok("pages 10-12"), ["pages", "10", "-", "12"]);
        assert_eq!(tok("a-b don't"), ["a-b", "don't"]);
        assert_eq!(tok("x &amp;lt; y"), ["x", "<", "y"]);
        assert_eq!(tok("a...b"), ["a", ".", ".", ".", "b"]);
        assert_eq!(tok("line-\nbreak\nnext <skipped>"), ["linebreak", "next"]);
        assert!(tok("  \t\n").is_empty());
        assert!(tok("").is_empty());
    }

    #[test]
    fn python_whitespace_includes_the_ascii_separators() {
        assert!(is_python_whitespace('\u{1f}') && is_python_whitespace('\u{3000}'));
        assert!(!is_python_whitespace('\u{200b}') && !is_python_whitespace('\u{180e}'));
        assert_eq!(tok("a\u{1c}b\u{a0}c"), ["a", "b", "c"]);
    }
}
