//! The three ways the client prints a message (the relay's `Message`): the human line
//! `#id [sender] first line`, one JSON object per line for scripts, and the whole text under a
//! header for readers that need all of it; and the counts and times the client's other lines
//! show.

use crate::message::Message;

/// How messages are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `#id [sender] first line`.
    Line,
    /// The message object as one line of JSON.
    Json,
    /// `#id [sender] time`, then the text, then an empty line.
    Full,
}

impl Message {
    /// The first line of the text that is not blank, trimmed.
    pub(crate) fn first_line(&self) -> &str {
        self.text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }

    /// `#id [sender] first line`.
    pub(crate) fn line(&self) -> String {
        format!("#{} [{}] {}", self.id, self.sender, self.first_line())
    }

    /// The message printed in `format`, ending with a newline.
    pub(crate) fn render(&self, format: Format) -> String {
        match format {
            Format::Line => format!("{}\n", self.line()),
            Format::Json => json_line(self),
            Format::Full => format!(
                "#{} [{}] {}\n{}\n\n",
                self.id,
                self.sender,
                utc(self.ts),
                self.text.trim_end_matches('\n')
            ),
        }
    }
}

/// `value` as one line of JSON, newline included, with U+2028 and U+2029 written as `\u2028`
/// and `\u2029` (as the relay writes them), so no reader splits the line at them.
pub(super) fn json_line(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_string(value).expect("a message or JSON value serializes");
    let mut line = crate::message::escape_separators(json);
    line.push('\n');
    line
}

/// `n` and `noun`, the noun in the plural unless `n` is 1: `1 message`, `2 messages`,
/// `2 fetches` (`es` after s, x, z, ch and sh).
pub(super) fn counted(n: u64, noun: &str) -> String {
    let plural = match n {
        1 => "",
        _ if ["s", "x", "z", "ch", "sh"]
            .iter()
            .any(|end| noun.ends_with(end)) =>
        {
            "es"
        }
        _ => "s",
    };
    format!("{n} {noun}{plural}")
}

/// `secs` (Unix time) as `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn utc(secs: f64) -> String {
    let secs = secs.max(0.0) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm), valid for every date after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn now_utc() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    utc(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Message {
        Message {
            id: 7,
            ts: 1_700_000_000.5,
            target: "proj-x".into(),
            sender: "claude".into(),
            reply_to: None,
            text: text.into(),
        }
    }

    #[test]
    fn counts_are_singular_for_one_and_plural_for_any_other() {
        assert_eq!(counted(1, "message"), "1 message");
        assert_eq!(counted(0, "message"), "0 messages");
        assert_eq!(counted(2, "message"), "2 messages");
        assert_eq!(counted(1, "fetch"), "1 fetch");
        assert_eq!(counted(3, "fetch"), "3 fetches");
        assert_eq!(counted(2, "time"), "2 times");
    }

    #[test]
    fn the_line_shows_the_first_line_that_is_not_blank() {
        assert_eq!(message("\n  hello \nworld").line(), "#7 [claude] hello");
        assert_eq!(message("").line(), "#7 [claude] ");
    }

    #[test]
    fn json_round_trips() {
        let m = message("a\n\"b\"");
        let back: Message = serde_json::from_str(m.render(Format::Json).trim_end()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn json_lines_write_line_and_paragraph_separators_escaped() {
        let m = message("a\u{2028}b\u{2029}c");
        let line = m.render(Format::Json);
        assert!(line.contains(r"a\u2028b\u2029c"), "{line}");
        assert!(!line.contains(['\u{2028}', '\u{2029}']), "{line}");
        assert_eq!(serde_json::from_str::<Message>(line.trim_end()).unwrap(), m);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000.5), "2023-11-14T22:13:20Z");
        assert_eq!(utc(951_782_400.0), "2000-02-29T00:00:00Z");
    }
}
