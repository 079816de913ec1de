//! Command-line parsing for the client commands: `--flag value`, `--flag=value`, switches,
//! repeatable flags and positional words (`-` is a word, `--` ends the flags), checked against
//! a table per command so every mistake is a usage error that names the flag.

use super::error::Error;
use std::collections::BTreeMap;
use std::str::FromStr;

/// One flag a command accepts.
pub(super) struct Flag {
    /// The name without the leading `--`.
    pub name: &'static str,
    /// Whether it takes a value (`--limit 5`) or is a switch (`--json`).
    pub value: bool,
    /// Whether it may be given more than once (`--from a --from b`).
    pub repeat: bool,
}

/// A flag that takes one value.
pub(super) const fn value(name: &'static str) -> Flag {
    Flag {
        name,
        value: true,
        repeat: false,
    }
}

/// A flag that takes a value and may be repeated.
pub(super) const fn many(name: &'static str) -> Flag {
    Flag {
        name,
        value: true,
        repeat: true,
    }
}

/// A flag without a value.
pub(super) const fn switch(name: &'static str) -> Flag {
    Flag {
        name,
        value: false,
        repeat: false,
    }
}

/// Flags every client command accepts.
pub(super) const COMMON: [Flag; 5] = [
    value("url"),
    value("token"),
    value("token-file"),
    switch("help"),
    switch("version"),
];

/// A parsed command line.
#[derive(Debug, Default)]
pub(super) struct Parsed {
    values: BTreeMap<&'static str, Vec<String>>,
    /// The words that are not flags, in order.
    pub words: Vec<String>,
}

impl Parsed {
    /// Parses `args` against `flags` (plus [`COMMON`]).
    pub(super) fn new(args: &[String], flags: &[Flag]) -> Result<Parsed, Error> {
        let mut parsed = Parsed::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            if arg == "--" {
                parsed.words.extend(rest.cloned());
                break;
            }
            // `-h` is the one short option: what people try first for help.
            let arg = if arg == "-h" { "--help" } else { arg.as_str() };
            let Some(body) = arg.strip_prefix("--") else {
                if arg.len() > 1 && arg.starts_with('-') {
                    return Err(Error::Usage(format!(
                        "unknown option {arg:?} (text starting with `-` goes after `--`)"
                    )));
                }
                parsed.words.push(arg.to_string());
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let known = || flags.iter().chain(COMMON.iter());
            let flag = known().find(|f| f.name == name).ok_or_else(|| {
                let meant = crate::suggest::closest(name, known().map(|f| f.name))
                    .map(|m| format!("; did you mean --{m}?"))
                    .unwrap_or_default();
                Error::Usage(format!("unknown option --{name}{meant}"))
            })?;
            let given = match (flag.value, inline) {
                (true, Some(v)) => v,
                (true, None) => rest
                    .next()
                    .cloned()
                    .ok_or_else(|| Error::Usage(format!("--{name} needs a value")))?,
                (false, Some(_)) => {
                    return Err(Error::Usage(format!("--{name} takes no value")));
                }
                (false, None) => String::new(),
            };
            let slot = parsed.values.entry(flag.name).or_default();
            if !slot.is_empty() && !flag.repeat {
                return Err(Error::Usage(format!("--{name} given twice")));
            }
            slot.push(given);
        }
        Ok(parsed)
    }

    /// The value of a single-valued flag.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeatable flag.
    pub(super) fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether a switch (or any flag) was given.
    pub(super) fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A required, non-blank value.
    pub(super) fn required(&self, name: &str) -> Result<&str, Error> {
        match self.get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(Error::Usage(format!("--{name} must not be blank"))),
            None => Err(Error::Usage(format!("--{name} is required"))),
        }
    }

    /// A number, if given; `what` describes the accepted range for the message.
    pub(super) fn number<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, Error> {
        self.get(name)
            .map(|raw| {
                raw.trim()
                    .parse()
                    .map_err(|_| Error::Usage(format!("--{name} must be {what}, not {raw:?}")))
            })
            .transpose()
    }

    /// Fails if any word was given (for commands that take none).
    pub(super) fn no_words(&self) -> Result<(), Error> {
        match self.words.first() {
            Some(w) => Err(Error::Usage(format!("unexpected argument {w:?}"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, Error> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Parsed::new(&args, &[value("target"), many("from"), switch("json")])
    }

    #[test]
    fn values_switches_and_words() {
        let p = parse(&[
            "--target=a",
            "--from",
            "x",
            "--from",
            "y",
            "--json",
            "-",
            "--",
            "--b",
        ])
        .unwrap();
        assert_eq!(p.get("target"), Some("a"));
        assert_eq!(p.all("from"), ["x", "y"]);
        assert!(p.has("json"));
        assert_eq!(p.words, ["-", "--b"]);
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for bad in [
            &["--nope"][..],
            &["--target"],
            &["--target", "a", "--target", "b"],
            &["--json=1"],
            &["-x"],
        ] {
            assert!(matches!(parse(bad), Err(Error::Usage(_))), "{bad:?}");
        }
    }
}
