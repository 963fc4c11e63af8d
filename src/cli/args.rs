//! A small option parser for the `produce` and `consume` commands: `--name value`,
//! `--name=value`, flags, `-v` (repeatable), `-h`/`--help`, `--` and positionals (`-` is a
//! positional: standard input).

use std::collections::HashMap;

/// How an option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arity {
    /// `--name`
    Flag,
    /// `--name VALUE` or `--name=VALUE`
    Value,
    /// `--name` or `--name=VALUE` (never the next argument)
    OptionalValue,
}

/// One accepted option (without the leading `--`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OptSpec {
    pub name: &'static str,
    pub arity: Arity,
}

pub(crate) const fn flag(name: &'static str) -> OptSpec {
    OptSpec {
        name,
        arity: Arity::Flag,
    }
}

pub(crate) const fn value(name: &'static str) -> OptSpec {
    OptSpec {
        name,
        arity: Arity::Value,
    }
}

pub(crate) const fn optional(name: &'static str) -> OptSpec {
    OptSpec {
        name,
        arity: Arity::OptionalValue,
    }
}

/// The parsed command line of one command.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub positionals: Vec<String>,
    /// Option name → value; flags and bare optional-value options map to `None`.
    options: HashMap<&'static str, Option<String>>,
    pub help: bool,
    pub verbosity: u8,
}

impl Parsed {
    pub(crate) fn has(&self, name: &str) -> bool {
        self.options.contains_key(name)
    }

    /// The value of a `Value` option, or the `=VALUE` of an optional-value option.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.options.get(name).and_then(|v| v.as_deref())
    }

    /// A value parsed with `parse`, naming the option in the error.
    pub(crate) fn parsed<T>(
        &self,
        name: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, String> {
        match self.value(name) {
            None => Ok(None),
            Some(text) => parse(text)
                .map(Some)
                .ok_or_else(|| format!("--{name} {text:?} is not {what}")),
        }
    }
}

/// Parses `args` (the arguments after the command name).
pub(crate) fn parse(args: &[String], specs: &[OptSpec]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut iter = args.iter();
    let mut only_positionals = false;
    while let Some(arg) = iter.next() {
        if only_positionals || arg == "-" || !arg.starts_with('-') {
            parsed.positionals.push(arg.clone());
            continue;
        }
        match arg.as_str() {
            "--" => {
                only_positionals = true;
                continue;
            }
            "-h" | "--help" => {
                parsed.help = true;
                continue;
            }
            _ => {}
        }
        if let Some(short) = arg.strip_prefix('-').filter(|s| !s.starts_with('-')) {
            if !short.is_empty() && short.chars().all(|c| c == 'v') {
                parsed.verbosity = parsed.verbosity.saturating_add(short.len() as u8);
                continue;
            }
            return Err(format!("unknown option {arg:?}"));
        }
        let body = &arg[2..];
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        if name == "verbose" && inline.is_none() {
            parsed.verbosity = parsed.verbosity.saturating_add(1);
            continue;
        }
        let Some(spec) = specs.iter().find(|s| s.name == name) else {
            return Err(format!("unknown option \"--{name}\""));
        };
        let value = match (spec.arity, inline) {
            (Arity::Flag, Some(_)) => return Err(format!("--{name} takes no value")),
            (Arity::Flag, None) | (Arity::OptionalValue, None) => None,
            (Arity::Value | Arity::OptionalValue, Some(value)) => Some(value),
            (Arity::Value, None) => match iter.next() {
                Some(value) => Some(value.clone()),
                None => return Err(format!("--{name} needs a value")),
            },
        };
        if parsed.options.insert(spec.name, value).is_some() {
            return Err(format!("--{name} is given more than once"));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[OptSpec] = &[
        value("rate"),
        flag("dry-run"),
        optional("op-type"),
        value("region"),
    ];

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_flags_and_positionals() {
        let p = parse(
            &args(&[
                "orders",
                "--rate",
                "10",
                "-",
                "--dry-run",
                "--region=eu-west-1",
                "--op-type",
                "-vv",
            ]),
            SPECS,
        )
        .unwrap();
        assert_eq!(p.positionals, ["orders", "-"]);
        assert_eq!(p.value("rate"), Some("10"));
        assert_eq!(p.value("region"), Some("eu-west-1"));
        assert!(p.has("dry-run") && p.has("op-type"));
        assert_eq!(p.value("op-type"), None);
        assert_eq!(p.verbosity, 2);
        let p = parse(&args(&["--op-type=kind", "--", "--rate"]), SPECS).unwrap();
        assert_eq!(p.value("op-type"), Some("kind"));
        assert_eq!(p.positionals, ["--rate"]);
        assert_eq!(
            p.parsed("rate", "a number", |s| s.parse::<f64>().ok())
                .unwrap(),
            None
        );
    }

    #[test]
    fn errors_name_the_option() {
        let e = parse(&args(&["--nope"]), SPECS).unwrap_err();
        assert!(e.contains("--nope"), "{e}");
        let e = parse(&args(&["--rate"]), SPECS).unwrap_err();
        assert!(e.contains("--rate needs a value"), "{e}");
        let e = parse(&args(&["--dry-run=yes"]), SPECS).unwrap_err();
        assert!(e.contains("takes no value"), "{e}");
        let e = parse(&args(&["--rate", "1", "--rate", "2"]), SPECS).unwrap_err();
        assert!(e.contains("more than once"), "{e}");
        let e = parse(&args(&["-x"]), SPECS).unwrap_err();
        assert!(e.contains("-x"), "{e}");
        let p = parse(&args(&["--rate", "x"]), SPECS).unwrap();
        let e = p
            .parsed("rate", "a number", |s| s.parse::<f64>().ok())
            .unwrap_err();
        assert_eq!(e, "--rate \"x\" is not a number");
        assert!(parse(&args(&["-h"]), SPECS).unwrap().help);
    }
}
