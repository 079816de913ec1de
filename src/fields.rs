//! The fields of a JSON object a caller sends (an MCP tool's arguments, a REST body) read as the
//! values the relay takes, each failure a 400 naming the field. Numbers and yes/no values are
//! also accepted as strings, since models often send them that way.

use crate::error::Error;
use crate::json_string::{self, Decoded};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A yes/no field; `"true"`/`"false"` strings are accepted too, since models send them.
pub(crate) fn boolean(args: &Map<String, Value>, key: &str) -> Result<Option<bool>, Error> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.trim() == "true" => Ok(Some(true)),
        Some(Value::String(s)) if s.trim() == "false" => Ok(Some(false)),
        Some(_) => Err(Error::BadRequest(format!("{key} must be true or false"))),
    }
}

/// A string field that may be absent (or null).
pub(crate) fn optional_string(
    args: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, Error> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        _ => string(args, key).map(Some),
    }
}

/// A string field that may be absent (or null), given as the JSON it was sent as: decoded
/// once, from the caller's bytes, straight into a buffer of its size (`json_string::decode`),
/// for fields as large as a message's text. A string `serde_json` refuses to decode (a lone
/// surrogate escape) is refused with its words.
pub(crate) fn raw_string(raw: Option<&RawValue>, key: &str) -> Result<Option<String>, Error> {
    Ok(raw_string_as_sent(raw, key)?.map(|decoded| decoded.text))
}

/// `raw_string`, with whether the JSON it was sent as is in the form `serde_json` writes and
/// how many characters the text holds, seen in the same pass (`json_string::decode`).
pub(crate) fn raw_string_as_sent(
    raw: Option<&RawValue>,
    key: &str,
) -> Result<Option<Decoded>, Error> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some(json) if json.starts_with('"') => match json_string::decode(json) {
            Some(decoded) => Ok(Some(decoded)),
            None => serde_json::from_str(json)
                .map(|text: String| {
                    Some(Decoded {
                        chars: text.chars().count(),
                        text,
                        as_written: false,
                    })
                })
                .map_err(|e| Error::BadRequest(format!("{key} is not a valid JSON string: {e}"))),
        },
        Some(_) => Err(Error::BadRequest(format!("{key} must be a string"))),
    }
}

/// A string field that must be there.
pub(crate) fn string(args: &Map<String, Value>, key: &str) -> Result<String, Error> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(Error::BadRequest(format!("{key} is required"))),
        Some(_) => Err(Error::BadRequest(format!("{key} must be a string"))),
    }
}

/// A whole number 0 or more, such as an id that names a message; integral floats and digit
/// strings are accepted too, since models often send numbers that way. One past 2^64 - 1 counts
/// as that (a limit is then clamped, an id lies past every message), as the original, reading
/// any integer, answered it.
pub(crate) fn integer(args: &Map<String, Value>, key: &str) -> Result<Option<u64>, Error> {
    whole(args, key, false)
}

/// A count or a bound (`limit`, `since_id`), read as `integer` reads a number except that a
/// negative whole number counts as 0: the original clamped a limit and took every id above a
/// since_id, so a negative one asked for as few, or for everything.
pub(crate) fn count(args: &Map<String, Value>, key: &str) -> Result<Option<u64>, Error> {
    whole(args, key, true)
}

fn whole(args: &Map<String, Value>, key: &str, signed: bool) -> Result<Option<u64>, Error> {
    let bad = || {
        let floor = if signed { "" } else { ", 0 or more" };
        Error::BadRequest(format!("{key} must be a whole number{floor}"))
    };
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            // `as` saturates at 0 and at u64::MAX.
            (None, Some(f)) if (signed || f >= 0.0) && f.fract() == 0.0 => Ok(Some(f as u64)),
            _ => Err(bad()),
        },
        Some(Value::String(s)) if signed => whole_count(s).map(Some).ok_or_else(bad),
        Some(Value::String(s)) => whole_number(s).map(Some).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// `raw`, trimmed, as a whole number if it is decimal digits; past 2^64 - 1 it is that.
pub(crate) fn whole_number(raw: &str) -> Option<u64> {
    digits(raw.trim())
}

/// `raw`, trimmed, as a count: decimal digits after an optional sign, as Python's `int()` reads
/// them, a negative one counting as 0; past 2^64 - 1 it is that.
pub(crate) fn whole_count(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    match raw.strip_prefix('-') {
        Some(negative) => digits(negative).map(|_| 0),
        None => digits(raw.strip_prefix('+').unwrap_or(raw)),
    }
}

fn digits(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(u64::MAX))
}

/// A number of seconds, 0 or more.
pub(crate) fn number(args: &Map<String, Value>, key: &str) -> Result<Option<f64>, Error> {
    let bad = || Error::BadRequest(format!("{key} must be a number of seconds, 0 or more"));
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().filter(|f| *f >= 0.0).map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| *f >= 0.0 && f.is_finite())
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("the tests pass objects"),
        }
    }

    fn message(e: Error) -> String {
        e.to_string()
    }

    #[test]
    fn each_parser_takes_its_forms_and_names_the_field_it_refuses() {
        let f = object(json!({
            "s": "x", "n": 3, "nf": 3.0, "ns": " 4 ", "neg": -1, "frac": 1.5,
            "t": "true", "b": false, "secs": "2.5", "null": null, "list": [1],
            "huge": 1e26, "huge_s": "18446744073709551616"
        }));
        assert_eq!(string(&f, "s").unwrap(), "x");
        assert_eq!(
            message(string(&f, "missing").unwrap_err()),
            "missing is required"
        );
        assert_eq!(message(string(&f, "null").unwrap_err()), "null is required");
        assert_eq!(message(string(&f, "n").unwrap_err()), "n must be a string");
        assert_eq!(optional_string(&f, "missing").unwrap(), None);
        assert_eq!(optional_string(&f, "null").unwrap(), None);
        assert_eq!(
            message(optional_string(&f, "list").unwrap_err()),
            "list must be a string"
        );
        assert_eq!(integer(&f, "n").unwrap(), Some(3));
        assert_eq!(integer(&f, "nf").unwrap(), Some(3));
        assert_eq!(integer(&f, "ns").unwrap(), Some(4));
        assert_eq!(integer(&f, "missing").unwrap(), None);
        assert_eq!(
            integer(&f, "huge").unwrap(),
            Some(u64::MAX),
            "past 2^64 - 1"
        );
        assert_eq!(
            integer(&f, "huge_s").unwrap(),
            Some(u64::MAX),
            "past 2^64 - 1"
        );
        for bad in ["neg", "frac", "list", "s"] {
            assert_eq!(
                message(integer(&f, bad).unwrap_err()),
                format!("{bad} must be a whole number, 0 or more")
            );
        }
        assert_eq!(
            message(count(&f, "frac").unwrap_err()),
            "frac must be a whole number"
        );
        assert_eq!(number(&f, "secs").unwrap(), Some(2.5));
        assert_eq!(number(&f, "n").unwrap(), Some(3.0));
        assert_eq!(
            message(number(&f, "neg").unwrap_err()),
            "neg must be a number of seconds, 0 or more"
        );
        let raw = |json: &str| RawValue::from_string(json.into()).unwrap();
        assert_eq!(raw_string(None, "r").unwrap(), None);
        assert_eq!(raw_string(Some(&raw("null")), "r").unwrap(), None);
        assert_eq!(
            raw_string(Some(&raw(r#""a\n\u00e9""#)), "r").unwrap(),
            Some("a\né".into())
        );
        for bad in ["1", "[\"x\"]", "{}", "true"] {
            assert_eq!(
                message(raw_string(Some(&raw(bad)), "r").unwrap_err()),
                "r must be a string"
            );
        }
        // A string JSON takes but cannot decode says so, not that it is no string.
        let lone = message(raw_string(Some(&raw(r#""\ud800""#)), "r").unwrap_err());
        assert!(lone.starts_with("r is not a valid JSON string: "), "{lone}");
        // Strings with and without escapes decode as serde_json decodes them.
        for text in [
            "",
            "plain",
            "é → \u{2028} 😀",
            "quote \" and \\ slash",
            "a\u{1}b",
        ] {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(
                raw_string(Some(&raw(&json)), "r").unwrap().as_deref(),
                Some(text),
                "{json}"
            );
        }
        assert_eq!(boolean(&f, "t").unwrap(), Some(true));
        assert_eq!(boolean(&f, "b").unwrap(), Some(false));
        assert_eq!(boolean(&f, "null").unwrap(), None);
        assert_eq!(
            message(boolean(&f, "s").unwrap_err()),
            "s must be true or false"
        );
    }

    #[test]
    fn a_negative_count_is_0_and_a_signed_id_is_refused() {
        let f = object(json!({
            "neg": -5, "negf": -3.0, "negs": " -7 ", "plus": "+5", "huge": -1e30,
            "n": 4, "bare": "-", "twice": "--1", "spaced": "- 1"
        }));
        for (key, want) in [
            ("neg", 0),
            ("negf", 0),
            ("negs", 0),
            ("plus", 5),
            ("huge", 0),
            ("n", 4),
        ] {
            assert_eq!(count(&f, key).unwrap(), Some(want), "{key}");
        }
        for bad in ["bare", "twice", "spaced"] {
            assert_eq!(
                message(count(&f, bad).unwrap_err()),
                format!("{bad} must be a whole number")
            );
        }
        for id in ["neg", "negf", "negs", "plus"] {
            assert!(integer(&f, id).is_err(), "{id}");
        }
        assert_eq!(whole_count("-18446744073709551616"), Some(0));
        assert_eq!(whole_count("+18446744073709551616"), Some(u64::MAX));
        assert_eq!((whole_number("+30"), whole_number("-1")), (None, None));
    }
}
