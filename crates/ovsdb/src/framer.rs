//! Splits OVSDB's undelimited stream of JSON objects into messages.
//!
//! A read timeout must not lose anything: waiting for an `update` with a
//! deadline is normal use, and the bytes read so far stay buffered until
//! their message is complete. (serde_json's stream reader gives up for good
//! after any I/O error, including a timeout.)

#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where scanning resumes in `buf`.
    pos: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Framer {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete top-level JSON value's bytes, if one is buffered.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            self.pos += 1;
            if self.in_string {
                match (self.escaped, b) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        let msg: Vec<u8> = self.buf.drain(..self.pos).collect();
                        self.pos = 0;
                        return Some(msg);
                    }
                }
                // Whitespace between messages.
                _ if self.depth == 0 && b.is_ascii_whitespace() => {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                }
                _ => {}
            }
        }
        None
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.buf.iter().all(u8::is_ascii_whitespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_concatenated_objects_across_arbitrary_chunks() {
        let stream = br#" {"a":"}{\"x"} {"b":[1,{"c":"\\"}]}{"d":{}}"#;
        for chunk in 1..stream.len() {
            let mut f = Framer::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                f.push(piece);
                while let Some(m) = f.next_message() {
                    got.push(String::from_utf8(m).unwrap().trim().to_string());
                }
            }
            assert_eq!(
                got,
                vec![r#"{"a":"}{\"x"}"#, r#"{"b":[1,{"c":"\\"}]}"#, r#"{"d":{}}"#],
                "chunk {chunk}"
            );
            assert!(f.is_empty());
        }
    }

    #[test]
    fn an_incomplete_message_waits_for_more() {
        let mut f = Framer::default();
        f.push(br#"{"id":1,"res"#);
        assert_eq!(f.next_message(), None);
        f.push(br#"ult":[]}"#);
        assert_eq!(
            f.next_message().unwrap(),
            br#"{"id":1,"result":[]}"#.to_vec()
        );
    }
}
