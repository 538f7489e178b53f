//! "Is this text in language L?" for IFEval's `language:response_language` and the English part
//! of `change_case:english_capital` / `english_lowercase`, without a statistical language model.
//!
//! The reference harness asks `langdetect`; adasamp decides only where a small rule can:
//! * a language with a script of its own (ko Hangul; ja kana (+ Han, at least one kana); th, bn,
//!   pa, gu, ta, te, kn, ml, he): more than half of the letters are in that script;
//! * a Latin-script language among IFEval's (en, es, pt, fr, de, it, pl, fi, sw, vi): more than
//!   half of the letters are Latin and, counting each language's thirty or so most frequent
//!   function words among the text's words, that language has strictly the most hits (no hit
//!   at all, or a tie, is "not that language");
//! * Cyrillic (ru, uk, bg), Arabic-script (ar, fa, ur) and Devanagari (hi, mr, ne) languages share
//!   a script with others and are **not checkable** here: [`checkable`] refuses them with a reason
//!   instead of passing or failing silently.
//!
//! A text without any letter counts as in every language (the reference counts a text
//! `langdetect` cannot classify as following the instruction).

/// Why a language cannot be checked, or `Ok` when it can.
pub fn checkable(code: &str) -> Result<(), String> {
    if own_script(code).is_some() || latin_words(code).is_some() {
        return Ok(());
    }
    let shared = match code {
        "ru" | "uk" | "bg" => "Cyrillic (ru, uk, bg)",
        "ar" | "fa" | "ur" => "Arabic script (ar, fa, ur)",
        "hi" | "mr" | "ne" => "Devanagari (hi, mr, ne)",
        _ => {
            return Err(format!(
                "unknown language code {code:?} (IFEval's ISO 639-1 codes: {})",
                SUPPORTED.join(", ")
            ))
        }
    };
    Err(format!(
        "language {code:?} is not checkable: its script, {shared}, is shared with other \
         languages and telling them apart needs a language model adasamp does not have \
         (checkable: {})",
        SUPPORTED.join(", ")
    ))
}

/// The language codes [`is_language`] can decide.
pub const SUPPORTED: &[&str] = &[
    "en", "es", "pt", "fr", "de", "it", "pl", "fi", "sw", "vi", "ja", "ko", "th", "bn", "pa", "gu",
    "ta", "te", "kn", "ml", "he",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Hangul,
    Kana,
    Han,
    Thai,
    Bengali,
    Gurmukhi,
    Gujarati,
    Tamil,
    Telugu,
    Kannada,
    Malayalam,
    Hebrew,
    Other,
}

fn script(c: char) -> Script {
    match c as u32 {
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x1E00..=0x1EFF => Script::Latin,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => Script::Hangul,
        0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => Script::Kana,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF => Script::Han,
        0x0E00..=0x0E7F => Script::Thai,
        0x0980..=0x09FF => Script::Bengali,
        0x0A00..=0x0A7F => Script::Gurmukhi,
        0x0A80..=0x0AFF => Script::Gujarati,
        0x0B80..=0x0BFF => Script::Tamil,
        0x0C00..=0x0C7F => Script::Telugu,
        0x0C80..=0x0CFF => Script::Kannada,
        0x0D00..=0x0D7F => Script::Malayalam,
        0x0590..=0x05FF => Script::Hebrew,
        _ => Script::Other,
    }
}

fn own_script(code: &str) -> Option<Script> {
    Some(match code {
        "ko" => Script::Hangul,
        "ja" => Script::Kana,
        "th" => Script::Thai,
        "bn" => Script::Bengali,
        "pa" => Script::Gurmukhi,
        "gu" => Script::Gujarati,
        "ta" => Script::Tamil,
        "te" => Script::Telugu,
        "kn" => Script::Kannada,
        "ml" => Script::Malayalam,
        "he" => Script::Hebrew,
        _ => return None,
    })
}

/// Frequent function words of the Latin-script languages (lowercase).
fn latin_words(code: &str) -> Option<&'static [&'static str]> {
    Some(match code {
        "en" => &[
            "the", "and", "of", "to", "is", "that", "it", "you", "for", "with", "are", "this",
            "was", "be", "have", "not", "but", "they", "your", "will", "what", "which", "from",
            "by", "at", "or", "we", "an", "our", "there", "their", "has",
        ],
        "es" => &[
            "el", "la", "los", "las", "de", "que", "y", "en", "un", "una", "es", "por", "con",
            "para", "del", "se", "no", "su", "al", "lo", "como", "más", "pero", "sus", "le", "ya",
            "este", "está", "son", "muy",
        ],
        "pt" => &[
            "o", "os", "de", "que", "e", "do", "da", "dos", "das", "em", "um", "uma", "é", "para",
            "com", "não", "no", "na", "por", "mais", "ao", "seu", "sua", "como", "mas", "foi",
            "também", "são", "você", "muito",
        ],
        "fr" => &[
            "le", "la", "les", "de", "des", "et", "est", "un", "une", "du", "en", "que", "qui",
            "pour", "dans", "pas", "ce", "il", "elle", "au", "sur", "avec", "ne", "plus", "sont",
            "nous", "vous", "je", "mais", "à",
        ],
        "de" => &[
            "der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "von", "mit",
            "sich", "des", "auf", "für", "im", "dem", "auch", "es", "werden", "aus", "er", "sie",
            "wir", "ich", "wird", "bei", "oder", "sind",
        ],
        "it" => &[
            "il", "la", "di", "che", "e", "è", "un", "una", "per", "non", "del", "della", "sono",
            "con", "si", "le", "gli", "lo", "da", "al", "come", "ma", "più", "anche", "questo",
            "nel", "ci", "io", "ho", "molto",
        ],
        "pl" => &[
            "i", "w", "nie", "na", "się", "z", "do", "jest", "to", "że", "o", "jak", "ale", "po",
            "co", "tak", "za", "od", "jego", "ich", "są", "dla", "czy", "już", "przez", "być",
            "może", "ten", "jako", "bardzo",
        ],
        "fi" => &[
            "ja", "on", "ei", "se", "että", "oli", "hän", "ovat", "mutta", "kun", "niin", "myös",
            "kuin", "tai", "joka", "ole", "olla", "tämä", "sen", "mitä", "jos", "vain", "minä",
            "me", "te", "he", "siitä", "voi", "nyt", "kanssa",
        ],
        "sw" => &[
            "na", "ya", "wa", "kwa", "ni", "za", "katika", "kama", "lakini", "hii", "au", "yake",
            "cha", "vya", "hiyo", "sana", "pia", "kuwa", "huo", "hata", "wao", "mimi", "sisi",
            "yeye", "watu", "kwamba", "baada", "tu", "hapa", "zaidi",
        ],
        "vi" => &[
            "và", "của", "là", "có", "không", "được", "những", "các", "một", "này", "cho", "với",
            "người", "trong", "để", "đã", "khi", "cũng", "như", "thì", "đến", "tôi", "bạn",
            "nhưng", "rất", "về", "từ", "sẽ", "nhiều", "làm",
        ],
        _ => return None,
    })
}

const LATIN: &[&str] = &["en", "es", "pt", "fr", "de", "it", "pl", "fi", "sw", "vi"];

/// Whether `text` is in the language `code` (see the module doc; `code` must be
/// [`checkable`], else the answer is `false`).
pub fn is_language(text: &str, code: &str) -> bool {
    let letters: Vec<Script> = text
        .chars()
        .filter(|c| c.is_alphabetic())
        .map(script)
        .collect();
    if letters.is_empty() {
        return true;
    }
    let share = |pred: &dyn Fn(Script) -> bool| {
        letters.iter().filter(|s| pred(**s)).count() * 2 > letters.len()
    };
    if let Some(own) = own_script(code) {
        if own == Script::Kana {
            return letters.contains(&Script::Kana)
                && share(&|s| s == Script::Kana || s == Script::Han);
        }
        return share(&|s| s == own);
    }
    if latin_words(code).is_none() || !share(&|s| s == Script::Latin) {
        return false;
    }
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let hits = |lang: &str| {
        let list = latin_words(lang).unwrap_or(&[]);
        words.iter().filter(|w| list.contains(w)).count()
    };
    let mine = hits(code);
    mine > 0 && LATIN.iter().all(|l| *l == code || hits(l) < mine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_languages_by_function_words() {
        let en = "The cat sat on the mat and it was happy with the food that you gave it.";
        let es = "El gato está en la casa y no quiere salir porque hace frío.";
        let fr = "Le chat est dans la maison et il ne veut pas sortir avec nous.";
        let de = "Die Katze ist im Haus und sie will nicht mit uns nach draußen.";
        assert!(is_language(en, "en"));
        assert!(!is_language(en, "es") && !is_language(en, "fr"));
        assert!(is_language(es, "es") && !is_language(es, "en"));
        assert!(is_language(fr, "fr") && !is_language(fr, "en"));
        assert!(is_language(de, "de") && !is_language(de, "en"));
        assert!(is_language(&en.to_uppercase(), "en"));
        // no function word at all: undecided, so not English
        assert!(!is_language("Xylophone quartz", "en"));
        // no letters: counts as followed
        assert!(is_language("42 + 7 = 49", "en"));
    }

    #[test]
    fn own_scripts() {
        assert!(is_language("안녕하세요, 만나서 반갑습니다.", "ko"));
        assert!(!is_language("Hello there, my friend.", "ko"));
        assert!(is_language("これは日本語の文章です。", "ja"));
        // Han without kana is not Japanese
        assert!(!is_language("这是中文句子。", "ja"));
        assert!(is_language("สวัสดีครับ", "th"));
        assert!(is_language("שלום עולם", "he"));
        assert!(!is_language("שלום עולם", "en"));
    }

    #[test]
    fn shared_scripts_are_refused() {
        for code in ["ru", "uk", "bg", "ar", "fa", "ur", "hi", "mr", "ne"] {
            let e = checkable(code).unwrap_err();
            assert!(e.contains("not checkable"), "{e}");
        }
        assert!(checkable("xx").unwrap_err().contains("unknown"));
        for code in SUPPORTED {
            checkable(code).unwrap();
        }
    }
}
