//! The part of TOML that `setup codex --apply` needs to edit Codex's `config.toml` without a
//! TOML library: the file read as a list of statements (a table header, a key/value pair, which
//! may run over several lines inside a multi-line string or an array, a comment, a blank line),
//! each with its exact text and its key decoded (`"relay"`, `'relay'` and `relay` are one key),
//! so that one table can be replaced and every other byte kept. Values are only followed far
//! enough to find where they end. A file this cannot follow is an error naming its line, and is
//! then left alone by the caller.

/// One statement of a TOML file: its whole lines, line ends included, and what it is.
#[derive(Debug)]
pub(super) struct Statement<'a> {
    pub text: &'a str,
    /// The line it starts on, from 1.
    pub line: usize,
    pub kind: Kind,
    /// A pair's value as written, without the comment after it.
    pub value: Option<&'a str>,
}

#[derive(Debug, PartialEq)]
pub(super) enum Kind {
    /// A line holding nothing, or only a comment.
    Blank,
    Comment,
    /// `[a.b]`, or `[[a.b]]` when `array`, with the key's parts decoded.
    Header {
        key: Vec<String>,
        array: bool,
    },
    /// `a.b = value`, with the key's parts decoded.
    Pair {
        key: Vec<String>,
    },
}

/// The statements of `text`, in order; together their texts are `text` exactly.
pub(super) fn statements(text: &str) -> Result<Vec<Statement<'_>>, String> {
    let mut r = Reader {
        text,
        pos: 0,
        line: 1,
    };
    if text.starts_with('\u{feff}') {
        r.pos = '\u{feff}'.len_utf8();
    }
    let mut out = Vec::new();
    while r.pos < text.len() {
        let start = if out.is_empty() { 0 } else { r.pos };
        let line = r.line;
        let mut value = None;
        r.spaces();
        let kind = match r.peek() {
            None | Some(b'\n' | b'\r') => Kind::Blank,
            Some(b'#') => Kind::Comment,
            Some(b'[') => {
                r.pos += 1;
                let array = r.eat("[");
                let key = r.key()?;
                if !(r.eat("]") && (!array || r.eat("]"))) {
                    return r.fail("a table header is not closed with `]` on its line");
                }
                Kind::Header { key, array }
            }
            Some(_) => {
                let key = r.key()?;
                if !r.eat("=") {
                    return r.fail("expected `=` after a key");
                }
                r.spaces();
                let from = r.pos;
                value = Some(&text[from..r.value()?]);
                Kind::Pair { key }
            }
        };
        r.line_end()?;
        out.push(Statement {
            text: &text[start..r.pos],
            line,
            kind,
            value,
        });
    }
    Ok(out)
}

/// A position in the text. Every delimiter TOML has is ASCII, so the text is walked byte by
/// byte and only sliced between delimiters.
struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at(&self, s: &str) -> bool {
        self.text.as_bytes()[self.pos..].starts_with(s.as_bytes())
    }

    fn eat(&mut self, s: &str) -> bool {
        let there = self.at(s);
        if there {
            self.pos += s.len();
        }
        there
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("line {}: {what}", self.line))
    }

    fn spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Up to the line's end, not including it.
    fn comment(&mut self) {
        while !matches!(self.peek(), None | Some(b'\n')) {
            self.pos += 1;
        }
    }

    /// Spaces, a comment, then the line's end (or the text's).
    fn line_end(&mut self) -> Result<(), String> {
        self.spaces();
        if self.peek() == Some(b'#') {
            self.comment();
        }
        if self.peek().is_none() || self.eat("\n") || self.eat("\r\n") {
            self.line += 1;
            return Ok(());
        }
        self.fail("unexpected text after the end of a statement")
    }

    /// A dotted key, and the spaces after it.
    fn key(&mut self) -> Result<Vec<String>, String> {
        let mut parts = Vec::new();
        loop {
            self.spaces();
            parts.push(self.simple_key()?);
            self.spaces();
            if !self.eat(".") {
                return Ok(parts);
            }
        }
    }

    fn simple_key(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(b'"') if self.at("\"\"\"") => self.fail("a key cannot be a multi-line string"),
            Some(b'"') => self.basic_string(),
            Some(b'\'') if self.at("'''") => self.fail("a key cannot be a multi-line string"),
            Some(b'\'') => self.literal_string(),
            _ => {
                let start = self.pos;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
                {
                    self.pos += 1;
                }
                if start == self.pos {
                    return self.fail("expected a key");
                }
                Ok(self.text[start..self.pos].to_string())
            }
        }
    }

    /// `"..."`, decoded; at its opening quote.
    fn basic_string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while !matches!(self.peek(), None | Some(b'"' | b'\\' | b'\n')) {
                self.pos += 1;
            }
            out.push_str(&self.text[start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                _ => return self.fail("a string is not closed on its line"),
            }
        }
    }

    fn escape(&mut self) -> Result<char, String> {
        let c = self.peek();
        self.pos += 1;
        Ok(match c {
            Some(b'b') => '\u{8}',
            Some(b't') => '\t',
            Some(b'n') => '\n',
            Some(b'f') => '\u{c}',
            Some(b'r') => '\r',
            Some(b'e') => '\u{1b}',
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'x') => self.hex(2)?,
            Some(b'u') => self.hex(4)?,
            Some(b'U') => self.hex(8)?,
            _ => return self.fail("unknown escape in a string"),
        })
    }

    fn hex(&mut self, digits: usize) -> Result<char, String> {
        let c = self
            .text
            .get(self.pos..self.pos + digits)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .and_then(char::from_u32);
        match c {
            Some(c) => {
                self.pos += digits;
                Ok(c)
            }
            None => self.fail("bad escape in a string"),
        }
    }

    /// `'...'`; at its opening quote.
    fn literal_string(&mut self) -> Result<String, String> {
        self.pos += 1;
        let start = self.pos;
        while !matches!(self.peek(), None | Some(b'\'' | b'\n')) {
            self.pos += 1;
        }
        if !self.eat("'") {
            return self.fail("a string is not closed on its line");
        }
        Ok(self.text[start..self.pos - 1].to_string())
    }

    /// `"""..."""` or `'''...'''`; at its opening quotes.
    fn multi_line_string(&mut self, quote: u8) -> Result<(), String> {
        let delimiter = if quote == b'"' { "\"\"\"" } else { "'''" };
        self.pos += 3;
        loop {
            match self.peek() {
                None => return self.fail("a multi-line string is not closed"),
                Some(b'\\') if quote == b'"' => {
                    self.pos += 1;
                    if self.peek() == Some(b'\n') {
                        self.line += 1;
                    }
                    self.pos += 1;
                }
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(_) if self.eat(delimiter) => {
                    // Up to two more quotes are the string's own last characters.
                    for _ in 0..2 {
                        if self.peek() == Some(quote) {
                            self.pos += 1;
                        }
                    }
                    return Ok(());
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A value, up to the end of the line it ends on (not included); returns where the value
    /// itself ends, before the comment and the spaces after it.
    fn value(&mut self) -> Result<usize, String> {
        self.spaces();
        if matches!(self.peek(), None | Some(b'\n' | b'\r' | b'#')) {
            return self.fail("a key has no value");
        }
        let mut depth = 0usize;
        let mut comment_at = None;
        loop {
            match self.peek() {
                None if depth == 0 => break,
                None => return self.fail("an array or inline table is not closed"),
                Some(b'\n') if depth == 0 => break,
                Some(b'\n') => {
                    self.line += 1;
                    self.pos += 1;
                }
                Some(b'#') => {
                    if depth == 0 {
                        comment_at = Some(self.pos);
                    }
                    self.comment()
                }
                Some(q @ (b'"' | b'\'')) if self.at(if q == b'"' { "\"\"\"" } else { "'''" }) => {
                    self.multi_line_string(q)?
                }
                Some(b'"') => {
                    self.basic_string()?;
                }
                Some(b'\'') => {
                    self.literal_string()?;
                }
                Some(b'[' | b'{') => {
                    depth += 1;
                    self.pos += 1;
                }
                Some(b']' | b'}') if depth == 0 => return self.fail("unexpected closing bracket"),
                Some(b']' | b'}') => {
                    depth -= 1;
                    self.pos += 1;
                }
                Some(_) => self.pos += 1,
            }
        }
        let end = comment_at.unwrap_or(self.pos);
        Ok(self.text[..end].trim_end().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        let found = statements(text).unwrap();
        assert_eq!(found.iter().map(|s| s.text).collect::<String>(), text);
        found.into_iter().map(|s| s.kind).collect()
    }

    fn key(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn headers_in_every_spelling_decode_to_the_same_key() {
        for header in [
            "[mcp_servers.relay]",
            "[ mcp_servers . relay ]  # a comment",
            "[mcp_servers.\"relay\"]",
            "['mcp_servers'.'relay']",
            "[\"mcp_\\u0073ervers\".relay]\r",
        ] {
            assert_eq!(
                kinds(&format!("{header}\n")),
                [Kind::Header {
                    key: key(&["mcp_servers", "relay"]),
                    array: false
                }],
                "{header}"
            );
        }
        assert_eq!(
            kinds("[[hooks]]\n"),
            [Kind::Header {
                key: key(&["hooks"]),
                array: true
            }]
        );
    }

    #[test]
    fn a_value_over_several_lines_is_one_statement() {
        let text = "a = [\n  [1, 2],\n  \"]\", # ]\n]\nb = \"\"\"\n[not.a.header]\n\\\"\"\"\"\"\"\nc.'d' = { e = 1 }\n# done\n\n";
        assert_eq!(
            kinds(text),
            [
                Kind::Pair { key: key(&["a"]) },
                Kind::Pair { key: key(&["b"]) },
                Kind::Pair {
                    key: key(&["c", "d"])
                },
                Kind::Comment,
                Kind::Blank,
            ]
        );
        let lines: Vec<usize> = statements(text).unwrap().iter().map(|s| s.line).collect();
        assert_eq!(lines, [1, 5, 8, 9, 10]);
    }

    #[test]
    fn a_pairs_value_is_as_written_without_the_comment_after_it() {
        let text = "url = \"http://h/mcp\" # the relay\nn = [1, # one\n 2] \t# two\r\ns = 'a#b'\n";
        let values: Vec<Option<&str>> = statements(text).unwrap().iter().map(|s| s.value).collect();
        assert_eq!(
            values,
            [
                Some("\"http://h/mcp\""),
                Some("[1, # one\n 2]"),
                Some("'a#b'")
            ]
        );
    }

    #[test]
    fn what_cannot_be_followed_is_an_error_with_its_line() {
        for (text, line) in [
            ("a = 1\n[b\n", 2),
            ("a = \"open\n", 1),
            ("a = [1,\n2\n", 3),
            ("x = 1\nb = \"\"\"never closed\n", 3),
            ("= 1\n", 1),
            ("a =\n", 1),
        ] {
            let e = statements(text).unwrap_err();
            assert!(e.starts_with(&format!("line {line}:")), "{text:?}: {e}");
        }
    }
}
