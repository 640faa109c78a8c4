//! An incremental Server-Sent Events decoder for Streamable HTTP response bodies.
//!
//! Written by hand because the SSE crates are tied to a specific reqwest version or to their
//! own HTTP client, and we need to feed it arbitrary chunks from any body stream. It accepts
//! LF, CRLF and lone CR line endings (the Python SDK ends lines with CRLF), joins multi-line
//! `data:` fields and skips comments, `id:`, `retry:` and empty priming events.

/// One complete event's data (the `data:` lines joined with `\n`).
#[derive(Debug, PartialEq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    data: String,
    event: Option<String>,
    has_data: bool,
    /// A chunk ended in `\r`: a following `\n` belongs to the same line end.
    pending_cr: bool,
}

impl Decoder {
    /// Feed a chunk; complete events are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Event>) {
        let mut start = 0;
        let mut i = 0;
        if self.pending_cr && chunk.first() == Some(&b'\n') {
            start = 1;
            i = 1;
        }
        self.pending_cr = false;
        while i < chunk.len() {
            let b = chunk[i];
            if b == b'\n' || b == b'\r' {
                self.buf.extend_from_slice(&chunk[start..i]);
                let line = std::mem::take(&mut self.buf);
                self.line(&line, out);
                if b == b'\r' {
                    if i + 1 < chunk.len() {
                        if chunk[i + 1] == b'\n' {
                            i += 1;
                        }
                    } else {
                        self.pending_cr = true;
                    }
                }
                start = i + 1;
            }
            i += 1;
        }
        self.buf.extend_from_slice(&chunk[start..]);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data && !self.data.is_empty() {
                out.push(Event {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.data.clear();
            self.event = None;
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(p) => {
                let v = &line[p + 1..];
                (&line[..p], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(input: &[u8], piece: usize) -> Vec<Event> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            d.feed(chunk, &mut out);
        }
        out
    }

    #[test]
    fn lf_crlf_and_cr_give_the_same_events_in_any_chunking() {
        let lf = b"id: 1\nevent: message\ndata: {\"a\":1}\n\n: comment\ndata: x\ndata: y\n\n";
        let crlf = b"id: 1\r\nevent: message\r\ndata: {\"a\":1}\r\n\r\n: comment\r\ndata: x\r\ndata: y\r\n\r\n";
        let cr = b"id: 1\revent: message\rdata: {\"a\":1}\r\r: comment\rdata: x\rdata: y\r\r";
        let expected = vec![
            Event {
                event: Some("message".into()),
                data: "{\"a\":1}".into(),
            },
            Event {
                event: None,
                data: "x\ny".into(),
            },
        ];
        for input in [&lf[..], &crlf[..], &cr[..]] {
            for piece in [1, 2, 3, 7, 1000] {
                assert_eq!(decode_in_pieces(input, piece), expected, "piece {piece}");
            }
        }
    }

    #[test]
    fn empty_priming_events_are_skipped() {
        let out = decode_in_pieces(b"id: 0\nretry: 3000\ndata: \n\ndata: {}\n\n", 4);
        assert_eq!(
            out,
            vec![Event {
                event: None,
                data: "{}".into()
            }]
        );
    }
}
