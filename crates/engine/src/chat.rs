//! Chat templates: the Jinja template a model ships (GGUF `tokenizer.chat_template`, or
//! `chat_template` in HuggingFace's `tokenizer_config.json`) rendered with minijinja the way
//! HuggingFace `transformers` renders it (`apply_chat_template`):
//!
//! - `trim_blocks` and `lstrip_blocks` on, a single trailing newline of the template dropped,
//!   `break`/`continue` allowed;
//! - variables `messages` (a list of `{role, content}`), `add_generation_prompt`, `bos_token`,
//!   `eos_token`, and `tools`/`documents` set to `none`;
//! - `raise_exception(message)` fails the render with that message, `strftime_now(format)` gives
//!   the current (UTC) date, and `tojson` writes JSON like Python's `json.dumps` (non-ASCII kept,
//!   `", "`/`": "` separators, `indent`, `sort_keys` and `ensure_ascii` arguments);
//! - Python string/dict methods (`.strip()`, `.startswith()`, `.split()`, `.items()`, …) through
//!   minijinja-contrib's `pycompat`.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{context, Environment, Error as JinjaError, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{io_err, EngineError, Result};
use crate::gguf::{self, Content};

/// GGUF metadata key of the chat template.
pub const GGUF_CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

const TEMPLATE_NAME: &str = "chat_template";

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks: `system`, `user`, `assistant`, …
    pub role: String,
    /// What they say.
    pub content: String,
}

impl ChatMessage {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    source: String,
    env: Environment<'static>,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source_len", &self.source.len())
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a template; a syntax error is reported with its line.
    pub fn new(source: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| {
                EngineError::ChatTemplate(format!("parsing the template: {}", describe(&e)))
            })?;
        Ok(Self { source, env })
    }

    /// The template stored under GGUF key `tokenizer.chat_template`, or `None` when there is none
    /// or it does not compile (then a warning is logged; [`ChatTemplate::try_from_gguf`] returns
    /// the error instead).
    pub fn from_gguf(content: &Content) -> Option<Self> {
        match Self::try_from_gguf(content) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("{GGUF_CHAT_TEMPLATE_KEY}: {e}");
                None
            }
        }
    }

    /// Like [`ChatTemplate::from_gguf`], but a template of the wrong type or that does not compile
    /// is an error.
    pub fn try_from_gguf(content: &Content) -> Result<Option<Self>> {
        gguf::get_str(content, GGUF_CHAT_TEMPLATE_KEY)?
            .map(|s| Self::new(s.to_string()))
            .transpose()
    }

    /// The template of a HuggingFace `tokenizer_config.json` (`chat_template`: a string, or a
    /// list of `{name, template}` of which `default` — else the first — is taken), falling back
    /// to a `chat_template.jinja` file in the same folder. `Ok(None)` when neither exists.
    pub fn from_tokenizer_config(path: &Path) -> Result<Option<Self>> {
        let source = match std::fs::read(path) {
            Ok(bytes) => {
                let config: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                    EngineError::ChatTemplate(format!("{}: invalid JSON: {e}", path.display()))
                })?;
                template_of_config(&config, path)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(PathBuf::from(path))(e)),
        };
        let source = match source {
            Some(s) => s,
            None => {
                let jinja = path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("chat_template.jinja");
                match std::fs::read_to_string(&jinja) {
                    Ok(s) => s,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io_err(jinja)(e)),
                }
            }
        };
        Self::new(source)
            .map(Some)
            .map_err(|e| EngineError::ChatTemplate(format!("{}: {e}", path.display())))
    }

    /// The template's source text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation. `bos`/`eos` are the texts of the model's BOS/EOS tokens (exposed
    /// as `bos_token`/`eos_token`); with `add_generation_prompt`, the template appends the header
    /// of the assistant's reply.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String> {
        self.render_context(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos,
            eos_token => eos,
            tools => Value::from(()),
            documents => Value::from(()),
        })
    }

    /// Renders with a caller-built context (for templates that take more variables, such as
    /// `tools`); `ctx` is usually made with [`minijinja::context!`].
    pub fn render_context(&self, ctx: Value) -> Result<String> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| EngineError::ChatTemplate(describe(&e)))?;
        tmpl.render(ctx)
            .map_err(|e| EngineError::ChatTemplate(format!("rendering: {}", describe(&e))))
    }
}

fn template_of_config(config: &serde_json::Value, path: &Path) -> Result<Option<String>> {
    let bad =
        |why: &str| EngineError::ChatTemplate(format!("{}: `chat_template` {why}", path.display()));
    match config.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Array(list)) => {
            let named = |want: Option<&str>| {
                list.iter().find_map(|entry| {
                    let name = entry.get("name").and_then(|n| n.as_str());
                    let template = entry.get("template").and_then(|t| t.as_str())?;
                    (want.is_none() || name == want).then(|| template.to_string())
                })
            };
            named(Some("default"))
                .or_else(|| named(None))
                .map(Some)
                .ok_or_else(|| bad("is a list without any `{name, template}` entry"))
        }
        Some(_) => Err(bad("is neither a string nor a list")),
    }
}

/// The error message with minijinja's cause chain and location.
fn describe(e: &JinjaError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

/// `raise_exception(message)`: fails the render with `message`, like transformers' helper.
fn raise_exception(message: String) -> std::result::Result<Value, JinjaError> {
    Err(JinjaError::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {message}"),
    ))
}

/// `strftime_now(format)`: the current UTC time formatted with the common `strftime` codes
/// (`%Y %y %m %d %e %B %b %h %A %a %H %I %M %S %p %j %F %T %D %%`).
fn strftime_now(format: String) -> std::result::Result<Value, JinjaError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime(&format, secs).map(Value::from)
}

fn strftime(format: &str, unix_secs: i64) -> std::result::Result<String, JinjaError> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let month = MONTHS[(m - 1) as usize];
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next().ok_or_else(|| {
            JinjaError::new(
                ErrorKind::InvalidOperation,
                "strftime_now: format ends with `%`",
            )
        })?;
        let _ = match spec {
            'Y' => write!(out, "{y}"),
            'y' => write!(out, "{:02}", y.rem_euclid(100)),
            'm' => write!(out, "{m:02}"),
            'd' => write!(out, "{d:02}"),
            'e' => write!(out, "{d:2}"),
            'B' => write!(out, "{month}"),
            'b' | 'h' => write!(out, "{}", &month[..3]),
            'A' => write!(out, "{}", DAYS[weekday]),
            'a' => write!(out, "{}", &DAYS[weekday][..3]),
            'H' => write!(out, "{hh:02}"),
            'I' => write!(out, "{:02}", (hh + 11) % 12 + 1),
            'M' => write!(out, "{mm:02}"),
            'S' => write!(out, "{ss:02}"),
            'p' => write!(out, "{}", if hh < 12 { "AM" } else { "PM" }),
            'j' => write!(out, "{yday:03}"),
            'F' => write!(out, "{y}-{m:02}-{d:02}"),
            'T' => write!(out, "{hh:02}:{mm:02}:{ss:02}"),
            'D' => write!(out, "{m:02}/{d:02}/{:02}", y.rem_euclid(100)),
            '%' => write!(out, "%"),
            other => {
                return Err(JinjaError::new(
                    ErrorKind::InvalidOperation,
                    format!("strftime_now: unsupported format code `%{other}`"),
                ))
            }
        };
    }
    Ok(out)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day count since 1970-01-01 of a date (inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `tojson(indent=None, ensure_ascii=False, sort_keys=False)`: Python `json.dumps` output.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, JinjaError> {
    let indent = kwargs.get::<Option<Value>>("indent")?;
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() || v.is_undefined() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(usize::try_from(n).unwrap_or(0))),
            (None, Some(s)) => Some(s.to_string()),
            _ => {
                return Err(JinjaError::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be a number or a string",
                ))
            }
        },
    };
    let opts = JsonOpts {
        indent,
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
    };
    // `separators` is accepted for compatibility; the Python defaults are always used.
    let _ = kwargs.get::<Option<Value>>("separators")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(&mut out, &value, &opts, 0)?;
    Ok(Value::from_safe_string(out))
}

struct JsonOpts {
    indent: Option<String>,
    ensure_ascii: bool,
    sort_keys: bool,
}

fn write_json(
    out: &mut String,
    v: &Value,
    opts: &JsonOpts,
    depth: usize,
) -> std::result::Result<(), JinjaError> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = &opts.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    let item_sep = if opts.indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let (true, Some(i)) = (v.is_integer(), v.as_i64()) {
                let _ = write!(out, "{i}");
            } else if v.is_integer() {
                // Integers outside i64 (u64/i128): their display form is exact.
                let _ = write!(out, "{v}");
            } else {
                let f = f64::try_from(v.clone())?;
                out.push_str(&python_float(f));
            }
        }
        ValueKind::String => write_json_str(out, v.as_str().unwrap_or_default(), opts.ensure_ascii),
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if opts.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                match k.as_str() {
                    Some(s) => write_json_str(out, s, opts.ensure_ascii),
                    None => write_json_str(out, &k.to_string(), opts.ensure_ascii),
                }
                out.push_str(": ");
                write_json(out, &v.get_item(k)?, opts, depth + 1)?;
            }
            newline(out, depth);
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_json(out, item, opts, depth + 1)?;
            }
            newline(out, depth);
            out.push(']');
        }
        other => {
            return Err(JinjaError::new(
                ErrorKind::InvalidOperation,
                format!("tojson: cannot serialize a value of kind {other}"),
            ))
        }
    }
    Ok(())
}

/// A JSON string literal escaped like Python's `json.dumps`.
fn write_json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)` as `json.dumps` writes it.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{f:e}"); // shortest round-trip digits, e.g. `1.5e-7`
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<ChatMessage> {
        vec![ChatMessage::user("Hi"), ChatMessage::assistant("Hello!")]
    }

    #[test]
    fn chatml_template() {
        let t = ChatTemplate::new(
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}".into(),
        )
        .unwrap();
        assert_eq!(
            t.render(&msgs(), true, "", "").unwrap(),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            t.render(&msgs()[..1], false, "", "").unwrap(),
            "<|im_start|>user\nHi<|im_end|>\n"
        );
    }

    #[test]
    fn trim_and_lstrip_blocks_like_transformers() {
        let t = ChatTemplate::new(
            "{{ bos_token }}\n{% for m in messages %}\n    {% if m.role == 'user' %}\n[U] {{ m.content.strip() }}\n    {% else %}\n[A] {{ m.content }}{{ eos_token }}\n    {% endif %}\n{% endfor %}\n".into(),
        )
        .unwrap();
        assert_eq!(
            t.render(&msgs(), false, "<s>", "</s>").unwrap(),
            "<s>\n[U] Hi\n[A] Hello!</s>\n"
        );
    }

    #[test]
    fn raise_exception_and_errors_name_the_cause() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'system' %}{{ raise_exception('Conversation must start with a system message') }}{% endif %}ok".into(),
        )
        .unwrap();
        let err = t.render(&msgs(), true, "", "").unwrap_err().to_string();
        assert!(
            err.contains("Conversation must start with a system message"),
            "{err}"
        );
        assert!(err.starts_with("chat template: rendering"), "{err}");
        let ok = t.render(&[ChatMessage::system("s")], true, "", "").unwrap();
        assert_eq!(ok, "ok");
        let err = ChatTemplate::new("{% for m in messages %}".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("parsing the template"), "{err}");
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let t = ChatTemplate::new("{{ messages | tojson }}|{{ messages[0] | tojson(indent=2) }}|{{ 'é\"\\n' | tojson }}|{{ 'é' | tojson(ensure_ascii=true) }}|{{ [1, 2.5, 1e20, none, true] | tojson }}".into()).unwrap();
        let out = t.render(&msgs(), false, "", "").unwrap();
        assert_eq!(
            out,
            "[{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]|{\n  \"role\": \"user\",\n  \"content\": \"Hi\"\n}|\"é\\\"\\n\"|\"\\u00e9\"|[1, 2.5, 1e+20, null, true]"
        );
        let sorted =
            ChatTemplate::new("{{ {'b': 1, 'a': [ ]} | tojson(sort_keys=true) }}".into()).unwrap();
        assert_eq!(
            sorted.render(&[], false, "", "").unwrap(),
            "{\"a\": [], \"b\": 1}"
        );
    }

    #[test]
    fn pycompat_methods_and_loop_controls() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content.upper() }}{{ m.content.startswith('H') }}{% endfor %}{% for k, v in {'x': 1}.items() %}{{ k }}={{ v }}{% endfor %}".into(),
        )
        .unwrap();
        assert_eq!(t.render(&msgs(), false, "", "").unwrap(), "HITruex=1");
    }

    #[test]
    fn strftime_formats_dates() {
        // 2026-11-30 12:34:56 UTC, a Monday.
        let secs = days_from_civil(2026, 11, 30) * 86_400 + 12 * 3600 + 34 * 60 + 56;
        assert_eq!(
            civil_from_days(days_from_civil(2026, 11, 30)),
            (2026, 11, 30)
        );
        assert_eq!(strftime("%d %b %Y", secs).unwrap(), "30 Nov 2026");
        assert_eq!(
            strftime("%A %B %e, %H:%M:%S %p %j %%", secs).unwrap(),
            "Monday November 30, 12:34:56 PM 334 %"
        );
        assert!(strftime("%Q", secs).is_err());
        let t = ChatTemplate::new("{{ strftime_now('%Y') | length }}".into()).unwrap();
        assert_eq!(t.render(&[], false, "", "").unwrap(), "4");
    }

    #[test]
    fn python_floats() {
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(1.5e-7), "1.5e-07");
        assert_eq!(python_float(0.0001), "0.0001");
        assert_eq!(python_float(-2.5), "-2.5");
    }

    #[test]
    fn tokenizer_config_variants() {
        let dir = std::env::temp_dir().join(format!("adasamp-chat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("tokenizer_config.json");
        std::fs::write(&cfg, r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ messages[0].content }}"}]}"#).unwrap();
        let t = ChatTemplate::from_tokenizer_config(&cfg).unwrap().unwrap();
        assert_eq!(t.render(&msgs(), false, "", "").unwrap(), "Hi");
        std::fs::write(&cfg, r#"{"bos_token": "<s>"}"#).unwrap();
        assert!(ChatTemplate::from_tokenizer_config(&cfg).unwrap().is_none());
        std::fs::write(dir.join("chat_template.jinja"), "J{{ messages | length }}").unwrap();
        let t = ChatTemplate::from_tokenizer_config(&cfg).unwrap().unwrap();
        assert_eq!(t.render(&msgs(), false, "", "").unwrap(), "J2");
        std::fs::write(&cfg, r#"{"chat_template": 3}"#).unwrap();
        let err = ChatTemplate::from_tokenizer_config(&cfg)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chat_template") && err.contains("tokenizer_config.json"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            ChatTemplate::from_tokenizer_config(&dir.join("tokenizer_config.json"))
                .unwrap()
                .is_none()
        );
    }
}
