//! Connector parameters: declared once ([`Param`]), then used for the specification that
//! Conduit reads, for validating the `map<string,string>` that `Configure` receives, for the
//! committed `connector.yaml` and for the README tables.
//!
//! Validation follows the Go SDK (`conduit-commons/config`): keys and values are trimmed,
//! empty values take the default, unknown keys are rejected, types are checked only for
//! non-empty values, and greater-than / less-than are strict.

pub(crate) mod gosyntax;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use gosyntax::GoDuration;

/// The value type of a parameter, as Conduit's `config.v1.Parameter.Type` knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    File,
    Duration,
}

impl ParamType {
    /// The name used in `connector.yaml`.
    pub fn yaml_name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Int => "int",
            ParamType::Float => "float",
            ParamType::Bool => "bool",
            ParamType::File => "file",
            ParamType::Duration => "duration",
        }
    }

    fn expectation(self) -> &'static str {
        match self {
            ParamType::String | ParamType::File => "a string",
            ParamType::Int => "an integer such as 10",
            ParamType::Float => "a number such as 1.5",
            ParamType::Bool => "true or false",
            ParamType::Duration => "a duration such as 500ms, 30s or 5m",
        }
    }

    fn accepts(self, value: &str) -> bool {
        match self {
            ParamType::String | ParamType::File => true,
            ParamType::Int => gosyntax::parse_int(value).is_some(),
            ParamType::Float => gosyntax::parse_float(value).is_some(),
            ParamType::Bool => gosyntax::parse_bool(value).is_some(),
            ParamType::Duration => gosyntax::parse_duration(value).is_some(),
        }
    }
}

/// A value check that Conduit understands (`config.v1.Validation`). Regexes must be valid in
/// Go's RE2 syntax as well, or Conduit refuses to load the plugin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validation {
    Required,
    GreaterThan(f64),
    LessThan(f64),
    Inclusion(&'static [&'static str]),
    Exclusion(&'static [&'static str]),
    Regex(&'static str),
}

impl Validation {
    /// `(yaml type name, value)` as written in `connector.yaml`.
    pub fn yaml(&self) -> (&'static str, String) {
        match self {
            Validation::Required => ("required", String::new()),
            Validation::GreaterThan(v) => ("greater-than", format_number(*v)),
            Validation::LessThan(v) => ("less-than", format_number(*v)),
            Validation::Inclusion(list) => ("inclusion", list.join(",")),
            Validation::Exclusion(list) => ("exclusion", list.join(",")),
            Validation::Regex(re) => ("regex", (*re).to_string()),
        }
    }
}

pub(crate) fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One parameter of a connector side.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: &'static str,
    pub description: &'static str,
    pub validations: &'static [Validation],
    /// Secret values are redacted wherever a configuration is printed.
    pub secret: bool,
}

impl Param {
    pub const fn new(name: &'static str, ty: ParamType, description: &'static str) -> Self {
        Param {
            name,
            ty,
            default: "",
            description,
            validations: &[],
            secret: false,
        }
    }

    pub const fn default(mut self, default: &'static str) -> Self {
        self.default = default;
        self
    }

    pub const fn validations(mut self, validations: &'static [Validation]) -> Self {
        self.validations = validations;
        self
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub fn is_required(&self) -> bool {
        self.validations.contains(&Validation::Required)
    }
}

/// A configuration error. Each names the parameter and says what is accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("unrecognized parameter {name:?}{suggestion}")]
    Unrecognized { name: String, suggestion: String },
    #[error("parameter {name:?} is required: {description}")]
    Required { name: String, description: String },
    #[error("parameter {name:?} has the value {value:?}, which is not {expected}")]
    InvalidType {
        name: String,
        value: String,
        expected: &'static str,
    },
    #[error("parameter {name:?} must be greater than {limit}, got {value}")]
    NotGreaterThan {
        name: String,
        value: String,
        limit: String,
    },
    #[error("parameter {name:?} must be less than {limit}, got {value}")]
    NotLessThan {
        name: String,
        value: String,
        limit: String,
    },
    #[error("parameter {name:?} must be one of {allowed}, got {value:?}")]
    NotIncluded {
        name: String,
        value: String,
        allowed: String,
    },
    #[error("parameter {name:?} must not be one of {denied}, got {value:?}")]
    Excluded {
        name: String,
        value: String,
        denied: String,
    },
    #[error(
        "parameter {name:?} has the value {value:?}, which does not match the pattern {pattern}"
    )]
    NoMatch {
        name: String,
        value: String,
        pattern: String,
    },
    /// A rule that spans parameters or needs more than a type check.
    #[error("parameter {name:?}: {message}")]
    Invalid { name: String, message: String },
    #[error("{}", join_errors(.0))]
    Many(Vec<ConfigError>),
}

fn join_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ConfigError {
    pub fn invalid(name: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            name: name.to_string(),
            message: message.into(),
        }
    }

    /// Combines errors; `None` when there are none.
    pub fn from_many(mut errors: Vec<ConfigError>) -> Option<ConfigError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(ConfigError::Many(errors)),
        }
    }
}

/// A validated configuration: every declared parameter has a value (possibly empty), no
/// unknown key is present, and every non-empty value has its declared type.
#[derive(Clone)]
pub(crate) struct Values {
    values: BTreeMap<&'static str, String>,
    params: &'static [Param],
}

impl Values {
    /// The trimmed value, or `None` when empty.
    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.str(name).and_then(gosyntax::parse_bool)
    }

    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        self.str(name).and_then(gosyntax::parse_int)
    }

    pub(crate) fn float(&self, name: &str) -> Option<f64> {
        self.str(name).and_then(gosyntax::parse_float)
    }

    pub(crate) fn duration(&self, name: &str) -> Option<GoDuration> {
        self.str(name).and_then(gosyntax::parse_duration)
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for param in self.params {
            let value = self
                .values
                .get(param.name)
                .map(String::as_str)
                .unwrap_or("");
            if param.secret && !value.is_empty() {
                map.entry(&param.name, &"<redacted>");
            } else {
                map.entry(&param.name, &value);
            }
        }
        map.finish()
    }
}

/// Validates a raw configuration against the declared parameters, collecting every problem.
pub(crate) fn validate(
    params: &'static [Param],
    raw: &HashMap<String, String>,
) -> Result<Values, ConfigError> {
    let mut errors = Vec::new();
    let sanitized: HashMap<String, String> = raw
        .iter()
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();

    let mut unknown: Vec<&String> = sanitized
        .keys()
        .filter(|key| !params.iter().any(|p| p.name == key.as_str()))
        .collect();
    unknown.sort();
    for key in unknown {
        errors.push(ConfigError::Unrecognized {
            name: key.clone(),
            suggestion: suggestion(key, params),
        });
    }

    let mut values = BTreeMap::new();
    for param in params {
        let value = match sanitized.get(param.name).map(String::as_str) {
            Some(v) if !v.is_empty() => v.to_string(),
            _ => param.default.to_string(),
        };
        if let Err(e) = check_value(param, &value) {
            errors.push(e);
        }
        values.insert(param.name, value);
    }

    match ConfigError::from_many(errors) {
        Some(e) => Err(e),
        None => Ok(Values { values, params }),
    }
}

fn check_value(param: &Param, value: &str) -> Result<(), ConfigError> {
    let name = param.name.to_string();
    if value.is_empty() {
        return if param.is_required() {
            Err(ConfigError::Required {
                name,
                description: param.description.to_string(),
            })
        } else {
            Ok(())
        };
    }
    if !param.ty.accepts(value) {
        return Err(ConfigError::InvalidType {
            name,
            value: display_value(param, value),
            expected: param.ty.expectation(),
        });
    }
    for validation in param.validations {
        match validation {
            Validation::Required => {}
            Validation::GreaterThan(limit) => {
                if !gosyntax::parse_float(value).is_some_and(|v| v > *limit) {
                    return Err(ConfigError::NotGreaterThan {
                        name,
                        value: value.to_string(),
                        limit: format_number(*limit),
                    });
                }
            }
            Validation::LessThan(limit) => {
                if !gosyntax::parse_float(value).is_some_and(|v| v < *limit) {
                    return Err(ConfigError::NotLessThan {
                        name,
                        value: value.to_string(),
                        limit: format_number(*limit),
                    });
                }
            }
            Validation::Inclusion(list) => {
                if !list.contains(&value) {
                    return Err(ConfigError::NotIncluded {
                        name,
                        value: value.to_string(),
                        allowed: list.join(", "),
                    });
                }
            }
            Validation::Exclusion(list) => {
                if list.contains(&value) {
                    return Err(ConfigError::Excluded {
                        name,
                        value: value.to_string(),
                        denied: list.join(", "),
                    });
                }
            }
            Validation::Regex(pattern) => {
                // Patterns are constants checked by the spec tests, so compiling cannot fail here.
                let matches = regex::Regex::new(pattern).map(|re| re.is_match(value));
                if !matches.unwrap_or(false) {
                    return Err(ConfigError::NoMatch {
                        name,
                        value: display_value(param, value),
                        pattern: (*pattern).to_string(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn display_value(param: &Param, value: &str) -> String {
    if param.secret {
        "<redacted>".into()
    } else {
        value.to_string()
    }
}

/// `: did you mean "x"?` for a close known name (case slips and small typos), else a list hint.
fn suggestion(unknown: &str, params: &[Param]) -> String {
    let best = params
        .iter()
        .map(|p| {
            (
                edit_distance(&unknown.to_lowercase(), &p.name.to_lowercase()),
                p.name,
            )
        })
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, name)) if d <= 3.max(unknown.len() / 4) => format!(": did you mean {name:?}?"),
        _ => ": see the connector's parameter list (`conduit-connector-kinesis specs`)".into(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    static PARAMS: &[Param] = &[
        Param::new("name", ParamType::String, "The name.").validations(&[Validation::Required]),
        Param::new("count", ParamType::Int, "How many.")
            .default("10")
            .validations(&[Validation::GreaterThan(0.0), Validation::LessThan(501.0)]),
        Param::new("enabled", ParamType::Bool, "On or off.").default("false"),
        Param::new("wait", ParamType::Duration, "How long.").default("5s"),
        Param::new("mode", ParamType::String, "Which mode.")
            .default("a")
            .validations(&[Validation::Inclusion(&["a", "b"])]),
        Param::new("id", ParamType::String, "An id.").validations(&[Validation::Regex("^[a-z]+$")]),
        Param::new("password", ParamType::String, "A secret.").secret(),
    ];

    fn raw(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn applies_defaults_and_trims() {
        let values = validate(PARAMS, &raw(&[(" name ", " x "), ("count", "")])).unwrap();
        assert_eq!(values.str("name"), Some("x"));
        assert_eq!(values.int("count"), Some(10));
        assert_eq!(values.bool("enabled"), Some(false));
        assert_eq!(
            values.duration("wait").unwrap().to_std(),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(values.str("id"), None);
    }

    #[test]
    fn unknown_key_is_named_with_a_suggestion() {
        let err = validate(PARAMS, &raw(&[("name", "x"), ("cuont", "1")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unrecognized parameter \"cuont\": did you mean \"count\"?"
        );
        let err = validate(
            PARAMS,
            &raw(&[("name", "x"), ("totally.different.thing", "1")]),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unrecognized parameter \"totally.different.thing\""),
            "{err}"
        );
    }

    #[test]
    fn required_missing() {
        let err = validate(PARAMS, &raw(&[])).unwrap_err();
        assert_eq!(err.to_string(), "parameter \"name\" is required: The name.");
        let err = validate(PARAMS, &raw(&[("name", "   ")])).unwrap_err();
        assert!(matches!(err, ConfigError::Required { .. }));
    }

    #[test]
    fn type_errors_name_parameter_and_expectation() {
        let err = validate(PARAMS, &raw(&[("name", "x"), ("enabled", "yes")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter \"enabled\" has the value \"yes\", which is not true or false"
        );
        let err = validate(PARAMS, &raw(&[("name", "x"), ("wait", "5")])).unwrap_err();
        assert!(
            err.to_string().contains("a duration such as 500ms"),
            "{err}"
        );
        let err = validate(PARAMS, &raw(&[("name", "x"), ("count", "1.5")])).unwrap_err();
        assert!(err.to_string().contains("not an integer"), "{err}");
    }

    #[test]
    fn ranges_are_strict() {
        assert!(validate(PARAMS, &raw(&[("name", "x"), ("count", "500")])).is_ok());
        let err = validate(PARAMS, &raw(&[("name", "x"), ("count", "501")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter \"count\" must be less than 501, got 501"
        );
        let err = validate(PARAMS, &raw(&[("name", "x"), ("count", "0")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter \"count\" must be greater than 0, got 0"
        );
    }

    #[test]
    fn inclusion_and_regex() {
        let err = validate(PARAMS, &raw(&[("name", "x"), ("mode", "c")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter \"mode\" must be one of a, b, got \"c\""
        );
        let err = validate(PARAMS, &raw(&[("name", "x"), ("id", "ABC")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not match the pattern ^[a-z]+$"),
            "{err}"
        );
    }

    #[test]
    fn collects_every_error() {
        let err = validate(PARAMS, &raw(&[("count", "x"), ("bogus", "1")])).unwrap_err();
        let ConfigError::Many(errors) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(errors.len(), 3, "{err}");
    }

    #[test]
    fn secrets_are_redacted() {
        let values = validate(PARAMS, &raw(&[("name", "x"), ("password", "hunter2")])).unwrap();
        let debug = format!("{values:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }
}
