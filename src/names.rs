//! Channel, sender and reader names: what a name may be, checked in one place for every way
//! one arrives (a post, a read, a stream, the configuration, a client command). A name is
//! trimmed, at most `MAX_CHARS` characters, and holds no control character and none of the
//! invisible ones that would let one name pass for another on screen.

use crate::error::Error;

/// Longest channel or sender name, in characters.
pub(crate) const MAX_CHARS: usize = 128;

/// Trims a channel or sender name and checks it: not empty, not too long, no control
/// characters, and none of the invisible characters that make a name read as another on screen
/// (Unicode format characters, such as bidi overrides and zero-width marks, and line and
/// paragraph separators).
pub(crate) fn check(field: &str, raw: &str) -> Result<String, Error> {
    trimmed(field, raw).map(str::to_string)
}

/// [`check`] of a name given as its own `String`, which is kept when there was nothing to trim.
pub(crate) fn check_owned(field: &str, raw: String) -> Result<String, Error> {
    let trimmed = trimmed(field, &raw)?;
    Ok(if trimmed.len() == raw.len() {
        raw
    } else {
        trimmed.to_string()
    })
}

/// Checks a name read back from the relay's own files: every name the relay writes passed
/// [`check`], so one that would not, or that has white space around it to trim, is one no post
/// could have given.
pub(crate) fn check_kept(field: &str, name: &str) -> Result<(), Error> {
    if trimmed(field, name)?.len() != name.len() {
        return Err(Error::BadRequest(format!(
            "{field} has white space around it"
        )));
    }
    Ok(())
}

/// The name `raw` is, trimmed, if it is one (see [`check`]).
fn trimmed<'a>(field: &str, raw: &'a str) -> Result<&'a str, Error> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Error::BadRequest(format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > MAX_CHARS {
        return Err(Error::BadRequest(format!(
            "{field} is longer than {MAX_CHARS} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "{field} must not contain control characters"
        )));
    }
    if let Some(c) = trimmed.chars().find(|c| is_invisible(*c)) {
        return Err(Error::BadRequest(format!(
            "{field} must not contain invisible format characters (found U+{:04X})",
            u32::from(c)
        )));
    }
    Ok(trimmed)
}

/// The Unicode 15 characters of general category Cf (format), as inclusive ranges.
const FORMAT_CHARACTERS: [(u32, u32); 21] = [
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a format character (Cf) or a line or paragraph separator (Zl, Zp).
fn is_invisible(c: char) -> bool {
    let c = u32::from(c);
    c == 0x2028
        || c == 0x2029
        || FORMAT_CHARACTERS
            .iter()
            .any(|&(low, high)| (low..=high).contains(&c))
}
