//! Server-sent events (`text/event-stream`, the framing of streamed OpenAI responses): bytes in as
//! they arrive from the socket, complete events out.

/// One server-sent event: its `event:` name, if any, and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`"error"` also for llama.cpp's non-standard `error:` lines).
    pub event: Option<String>,
    /// The `data:` lines of the event, joined by `\n`.
    pub data: String,
}

/// Incremental event-stream parser: reads may split a line (even a `\r\n` pair or a multi-byte
/// character) anywhere, and one read may hold several events.
///
/// Lines end at `\n`, `\r\n` or `\r`; a blank line dispatches the event; `:` lines are comments;
/// one space after a field's colon is dropped. Beyond the standard, an `error:` field (llama.cpp's
/// server reports stream failures so) counts as data of an event named `error`.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream; returns the events they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue; // the `\n` of a `\r\n` pair whose `\r` ended the line
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.line_done(&line) {
                        out.push(ev);
                    }
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// End of the stream: the event cut off by it, if it has data. (The standard drops such an
    /// event; returning it lets a caller accept a `[DONE]` whose closing blank line is missing.)
    pub fn finish(mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            // A trailing unterminated line can only add a field; a blank one would have
            // dispatched already.
            self.line_done(&line);
        }
        self.dispatch()
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" | "error" => {
                if field == "error" && self.event.is_none() {
                    self.event = Some("error".into());
                }
                let data = self.data.get_or_insert_with(String::new);
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            "event" => self.event = Some(value.to_string()),
            _ => {} // id, retry and unknown fields do not matter here
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        self.data.take().map(|data| SseEvent { event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: s.into(),
        }
    }

    fn feed_all(p: &mut SseParser, parts: &[&[u8]]) -> Vec<SseEvent> {
        parts.iter().flat_map(|b| p.push(b)).collect()
    }

    #[test]
    fn several_events_in_one_read() {
        let mut p = SseParser::new();
        let evs = p.push(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n");
        assert_eq!(
            evs,
            vec![data("{\"a\":1}"), data("{\"b\":2}"), data("[DONE]")]
        );
        assert_eq!(p.finish(), None);
    }

    #[test]
    fn events_split_anywhere_across_reads() {
        let stream = "data: {\"x\":\"héllo\"}\r\n\r\ndata: [DONE]\r\n\r\n".as_bytes();
        let whole = SseParser::new().push(stream);
        assert_eq!(whole, vec![data("{\"x\":\"héllo\"}"), data("[DONE]")]);
        // Every split point, including inside `\r\n` and inside the two-byte `é`.
        for cut in 0..=stream.len() {
            let mut p = SseParser::new();
            let evs = feed_all(&mut p, &[&stream[..cut], &stream[cut..]]);
            assert_eq!(evs, whole, "split at byte {cut}");
        }
        // One byte per read.
        let mut p = SseParser::new();
        let parts: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(feed_all(&mut p, &parts), whole);
    }

    #[test]
    fn bare_cr_line_ends_and_multi_line_data() {
        let mut p = SseParser::new();
        let evs = p.push(b"data: one\rdata:two\r\rdata: three\n");
        assert_eq!(evs, vec![data("one\ntwo")]);
        assert_eq!(p.finish(), Some(data("three")));
    }

    #[test]
    fn comments_and_other_fields_are_skipped_and_events_named() {
        let mut p = SseParser::new();
        let evs =
            p.push(b": keep-alive\n\nid: 7\nretry: 10\nevent: error\ndata: {\"error\":{}}\n\n");
        assert_eq!(
            evs,
            vec![SseEvent {
                event: Some("error".into()),
                data: "{\"error\":{}}".into()
            }]
        );
        // A blank line with no data dispatches nothing.
        assert!(p.push(b"\n\n\n").is_empty());
    }

    #[test]
    fn llama_cpp_error_lines_become_error_events() {
        let mut p = SseParser::new();
        let evs = p.push(b"error: {\"code\":500,\"message\":\"boom\"}\n\n");
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].event.as_deref(), Some("error"));
        assert!(evs[0].data.contains("boom"));
    }

    #[test]
    fn done_without_final_blank_line_is_returned_by_finish() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: [DONE]").is_empty());
        assert_eq!(p.finish(), Some(data("[DONE]")));
        let mut p = SseParser::new();
        assert!(p.push(b"data: [DONE]\n").is_empty());
        assert_eq!(p.finish(), Some(data("[DONE]")));
    }
}
