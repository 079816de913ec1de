//! How the relay writes a string into JSON by hand: quoted and escaped exactly as `serde_json`
//! escapes it, with U+2028 and U+2029 escaped as well (see `message::escape_separators`). Used
//! where a reply is put together from parts serialised before (a tool result's text block, an
//! error's text), and for the escaped copy of a message's wire JSON that such a text block holds.
//! Also how it tells that a JSON string someone else wrote (a post's body, a journal line) is
//! already in that form, so its bytes can be kept instead of made again.

use crate::message::SEPARATOR_LEAD;

/// Appends `text` to `out` as a JSON string, quoted and escaped exactly as `serde_json` writes
/// it, with U+2028 and U+2029 escaped as well.
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    push_escaped(out, text);
    out.push('"');
}

/// Appends `text` to `out` escaped as inside a JSON string (see `push_string`); a string cut
/// into `str` pieces escapes piece by piece to the same bytes as whole. Runs of bytes that need
/// no escape (all but `"`, `\`, control characters and the separators) are found eight bytes
/// at a time and copied whole, so a page of messages is written as the text of a content item
/// at little more than the cost of copying it.
pub(crate) fn push_escaped(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len());
    // `text[run..i]` is copied as it is when the next escape (or the end) is reached; escapes
    // start at ASCII bytes or a separator's lead byte, so both ends are character boundaries.
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            // Skip to the first byte of the word that may need an escape, if any.
            let mask = escape_mask(u64::from_le_bytes(word.try_into().expect("eight bytes")));
            if mask == 0 {
                i += 8;
                continue;
            }
            i += mask.trailing_zeros() as usize / 8;
        }
        let Some((escape, width)) = escape_at(bytes, i) else {
            i += 1;
            continue;
        };
        out.push_str(&text[run..i]);
        match escape {
            Escape::Short(e) => out.push_str(e),
            Escape::Control(c) => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(c >> 4)]));
                out.push(char::from(HEX[usize::from(c & 0xf)]));
            }
        }
        i += width;
        run = i;
    }
    out.push_str(&text[run..]);
}

/// The high bit set in each byte of `word` (read little-endian) that is a control character,
/// `"`, `\` or the lead byte of U+2028 and U+2029, found without a branch per byte. Bytes above
/// the first such byte may be marked wrongly (a borrow carries into them), so only the lowest
/// mark is exact; zero when no byte is.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    control
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        | zero_byte(word ^ (ONES * u64::from(SEPARATOR_LEAD)))
}

/// How a string byte is escaped.
enum Escape {
    Short(&'static str),
    /// `\u00XX`, lowercase hex.
    Control(u8),
}

/// The escape for the character at `bytes[i]` and how many bytes it replaces; None when it is
/// written as it is.
fn escape_at(bytes: &[u8], i: usize) -> Option<(Escape, usize)> {
    let short = |e| Some((Escape::Short(e), 1));
    match bytes[i] {
        b'"' => short("\\\""),
        b'\\' => short("\\\\"),
        b'\n' => short("\\n"),
        b'\r' => short("\\r"),
        b'\t' => short("\\t"),
        0x08 => short("\\b"),
        0x0c => short("\\f"),
        control @ 0..=0x1f => Some((Escape::Control(control), 1)),
        // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
        SEPARATOR_LEAD => match bytes.get(i + 1..i + 3)? {
            [0x80, 0xa8] => Some((Escape::Short("\\u2028"), 3)),
            [0x80, 0xa9] => Some((Escape::Short("\\u2029"), 3)),
            _ => None,
        },
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `json` escaped as the inside of a JSON string, as `push_escaped` writes it.
pub(crate) fn escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 8 + 16);
    push_escaped(&mut out, json);
    out
}

/// Whether `raw` (valid UTF-8) is one whole JSON string, escaped as `serde_json` escapes it
/// (see `decode`): quotes around it, and inside no control character, no quote
/// that is not escaped, and only the escapes serde writes.
pub(crate) fn is_string_as_written(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.len() < 2 || b[0] != b'"' || b[b.len() - 1] != b'"' {
        return false;
    }
    let inner = &b[1..b.len() - 1];
    let mut at = 0;
    while let Some(found) = next_special(&inner[at..]) {
        let escape = at + found;
        if inner[escape] != b'\\' {
            return false;
        }
        match escape_len(&inner[escape + 1..]) {
            Some(len) => at = escape + 1 + len,
            None => return false,
        }
    }
    true
}

/// Where the first byte a JSON string cannot hold as it is (a control character, a quote or a
/// backslash) lies in `bytes`. Blocks are tested whole first, a loop without an early exit that
/// the compiler turns into vector instructions.
fn next_special(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 64;
    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut start = 0;
    for block in bytes.chunks(BLOCK) {
        if block.iter().fold(false, |any, &b| any | special(b)) {
            return block.iter().position(|&b| special(b)).map(|p| start + p);
        }
        start += block.len();
    }
    None
}

/// The length of the escape `escape` starts with (what follows its backslash), if it is one
/// `serde_json` writes.
fn escape_len(escape: &[u8]) -> Option<usize> {
    match escape {
        [b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't', ..] => Some(1),
        [b'u', b'0', b'0', hi @ (b'0' | b'1'), lo, ..] => {
            let short = matches!((*hi, *lo), (b'0', b'8' | b'9' | b'a' | b'c' | b'd'));
            (!short && matches!(lo, b'0'..=b'9' | b'a'..=b'f')).then_some(5)
        }
        _ => None,
    }
}

/// A JSON string decoded by `decode`.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub text: String,
    /// Whether every escape is one `serde_json` writes.
    pub as_written: bool,
    /// How many characters the text holds (what `text.chars().count()` says), counted in the
    /// same pass: the tool log records it, and counting a large text again once it has left
    /// the processor's cache costs as much as decoding it.
    pub chars: usize,
}

/// The text the JSON string `raw` (quotes included, as a `RawValue` holds it: valid JSON, so
/// with no control character and only well-formed escapes) stands for, decoded in one pass into
/// a buffer of the right size; `None` for an escape that names no character (a lone surrogate).
/// `serde_json` decodes such a string into a scratch buffer that grows as it goes and then
/// copies it out: for a text of a mebibyte with an escape on every line, three buffers the size
/// of the text instead of one. Also says whether every escape is one `serde_json` writes
/// (`\"`, `\\`, the short forms of five control characters and `\u00xx`, lower-case, for the
/// other ones below U+0020; another writer may escape `/` or any character as `\uXXXX`, which
/// reads the same but is not the bytes a reply sends), and how many characters the text holds,
/// which the same pass sees.
pub(crate) fn decode(raw: &str) -> Option<Decoded> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    let mut as_written = true;
    let mut chars = 0;
    loop {
        let (backslash, run_chars) = run_to_backslash(rest.as_bytes());
        chars += run_chars;
        let Some(at) = backslash else { break };
        out.push_str(&rest[..at]);
        as_written = as_written && escape_len(&rest.as_bytes()[at + 1..]).is_some();
        let escape = rest.as_bytes().get(at + 1)?;
        rest = &rest[at + 2..];
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let (unit, after) = hex_unit(rest)?;
                rest = after;
                match unit {
                    0xD800..=0xDBFF => {
                        let (low, after) = rest.strip_prefix("\\u").and_then(hex_unit)?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        rest = after;
                        let code = 0x10000
                            + ((u32::from(unit) - 0xD800) << 10)
                            + (u32::from(low) - 0xDC00);
                        char::from_u32(code)?
                    }
                    unit => char::from_u32(u32::from(unit))?,
                }
            }
            _ => return None,
        };
        out.push(c);
        chars += 1;
    }
    out.push_str(rest);
    Some(Decoded {
        text: out,
        as_written,
        chars,
    })
}

/// Where the first backslash in `bytes` (UTF-8) lies, if any, and how many characters come
/// before it: the bytes that do not continue a multi-byte character. Blocks are looked through
/// whole, a loop without an early exit that the compiler turns into vector instructions, so
/// the count costs little beside the search.
fn run_to_backslash(bytes: &[u8]) -> (Option<usize>, usize) {
    const BLOCK: usize = 64;
    let mut chars = 0;
    for (n, block) in bytes.chunks(BLOCK).enumerate() {
        let (backslash, count) = block.iter().fold((false, 0u8), |(any, count), &b| {
            (any | (b == b'\\'), count + u8::from(starts_character(b)))
        });
        if backslash {
            let at = block
                .iter()
                .position(|&b| b == b'\\')
                .unwrap_or(block.len());
            chars += block[..at].iter().filter(|&&b| starts_character(b)).count();
            return (Some(n * BLOCK + at), chars);
        }
        chars += usize::from(count);
    }
    (None, chars)
}

/// Whether a UTF-8 byte starts a character: every byte but a continuation byte, 0b10xx_xxxx,
/// which as a signed byte is below -64.
fn starts_character(b: u8) -> bool {
    b as i8 >= -64
}

/// The four hex digits `rest` starts with, as a UTF-16 unit, and what follows them.
fn hex_unit(rest: &str) -> Option<(u16, &str)> {
    let digits = rest.get(..4)?;
    let unit = u16::from_str_radix(digits, 16).ok()?;
    // `from_str_radix` also takes a sign.
    digits
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then_some((unit, &rest[4..]))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::message::escape_separators;

    /// Every character class `push_string` treats apart: all of ASCII, the separators and
    /// their neighbours, a lone lead byte's character, other multi-byte characters.
    pub(crate) fn tricky_texts() -> Vec<String> {
        let ascii: String = (0u8..0x80).map(char::from).collect();
        vec![
            String::new(),
            ascii.clone(),
            ascii.chars().rev().collect(),
            "quote \" backslash \\ crlf\r\n tab\t".into(),
            "\u{2028}\u{2029}\u{2027}\u{202a}\u{2000}\u{20ac} \u{e000}x".into(),
            "emoji 🦀👍🏽 é ü 漢字 \u{0}\u{1f}\u{7f}\u{80}\u{ffff}".into(),
            r#"{"id":1,"text":"a \"b\" \\u2028 \n"}"#.into(),
            "\u{2028}".into(),
            "ends with lead \u{2000}".into(),
        ]
    }

    #[test]
    fn strings_are_written_as_serde_writes_them_with_separators_escaped() {
        for text in tricky_texts() {
            let mut ours = String::from("prefix ");
            push_string(&mut ours, &text);
            let serde = escape_separators(serde_json::to_string(&text).unwrap());
            assert_eq!(ours, format!("prefix {serde}"), "{text:?}");
            assert_eq!(serde_json::from_str::<String>(&ours[7..]).unwrap(), text);
        }
    }

    #[test]
    fn every_escape_is_found_at_every_place_in_a_word_and_beside_another() {
        let specials = [
            "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{2028}", "\u{2029}", "\u{2027}", "€", "é",
            "\u{7f}", "a",
        ];
        for first in specials {
            for second in specials {
                for before in 0..17 {
                    for gap in [0, 1, 3, 7, 8] {
                        let text = format!(
                            "{}{first}{}{second}{}",
                            "a".repeat(before),
                            "b".repeat(gap),
                            "c".repeat(before % 9)
                        );
                        let mut ours = String::new();
                        push_string(&mut ours, &text);
                        let serde = escape_separators(serde_json::to_string(&text).unwrap());
                        assert_eq!(ours, serde, "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_string_is_checked_whole_wherever_its_escapes_fall() {
        for at in [0, 1, 62, 63, 64, 65, 127, 128, 199] {
            let with = |piece: &str| {
                let mut inner = "x".repeat(200);
                inner.insert_str(at, piece);
                format!("\"{inner}\"")
            };
            for good in ["\\n", "\\\"", "\\\\", "\\u001f", "é", "\u{7f}"] {
                assert!(is_string_as_written(&with(good)), "{good:?} at {at}");
            }
            for bad in ["\"", "\n", "\u{1f}", "\\/", "\\u001F", "\\u0041", "\\"] {
                assert!(!is_string_as_written(&with(bad)), "{bad:?} at {at}");
            }
        }
        for whole in ["", "\"", "x", "\"x", "x\""] {
            assert!(!is_string_as_written(whole), "{whole:?}");
        }
        assert!(is_string_as_written("\"\""));
    }

    #[test]
    fn only_the_escapes_serde_json_writes_count_as_written() {
        let written: String = (0u32..0x100).filter_map(char::from_u32).collect();
        for c in written.chars() {
            let raw = serde_json::to_string(&c.to_string()).unwrap();
            assert!(decode(&raw).unwrap().as_written, "{raw}");
        }
        assert!(
            decode(&serde_json::to_string(&written).unwrap())
                .unwrap()
                .as_written
        );
        for raw in [
            r#""\/""#,
            r#""caf\u00e9""#,
            r#""\u000a""#,
            r#""\u0008""#,
            r#""\u001F""#,
            r#""\u0041""#,
            r#""\ud83c\udf89""#,
            r#""\u2028""#,
        ] {
            assert_eq!(decode(raw).map(|d| d.as_written), Some(false), "{raw}");
        }
    }

    #[test]
    fn characters_are_counted_across_blocks_and_escapes() {
        // Multi-byte characters and escapes on every side of the 64-byte blocks the search
        // looks through whole.
        for at in [0, 1, 62, 63, 64, 65, 127, 128, 200] {
            for piece in ["é", "漢", "🦀", "\n", "\"", "\u{1}", "\u{2028}"] {
                let text = format!("{}{piece}{}{piece}", "a".repeat(at), "ü".repeat(at));
                let raw = serde_json::to_string(&text).unwrap();
                let decoded = decode(&raw).unwrap();
                assert_eq!(decoded.text, text);
                assert_eq!(decoded.chars, text.chars().count(), "{raw}");
            }
        }
    }

    #[test]
    fn a_json_string_decodes_as_serde_json_decodes_it() {
        let mut raws: Vec<String> = tricky_texts()
            .iter()
            .map(|t| serde_json::to_string(t).unwrap())
            .collect();
        raws.extend(
            [
                r#""""#,
                r#""\/\"\\\b\f\n\r\t""#,
                r#""\u0041\u00e9\u00E9\u2028\ud83d\ude00 x""#,
                r#""a\u0000b""#,
                r#""é\nü → 😀""#,
            ]
            .map(String::from),
        );
        for raw in &raws {
            let serde: String = serde_json::from_str(raw).unwrap();
            let decoded = decode(raw).unwrap();
            assert_eq!(decoded.text, serde, "{raw}");
            assert_eq!(decoded.as_written, is_string_as_written(raw), "{raw}");
            assert_eq!(decoded.chars, serde.chars().count(), "{raw}");
        }
        // Escapes serde_json refuses (a lone or reversed surrogate) decode to nothing.
        for raw in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800x""#,
            r#""\ud800\u0041""#,
            r#""\udc00\ud800""#,
        ] {
            assert!(serde_json::from_str::<String>(raw).is_err(), "{raw}");
            assert!(decode(raw).is_none(), "{raw}");
        }
    }
}
