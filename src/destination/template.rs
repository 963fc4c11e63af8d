//! Handlebars templates over records: partition keys, explicit hash keys, stream names and
//! the `template` record format all render through this.
//!
//! The record is exposed with the field names of Conduit's Go templates, so migrating is
//! mechanical: `{{ .Key }}` becomes `{{Key}}`, `{{ .Payload.After.id }}` becomes
//! `{{Payload.After.id}}`, and `{{ index .Metadata "opencdc.collection" }}` becomes
//! `{{lookup Metadata "opencdc.collection"}}` (or `{{Metadata.[opencdc.collection]}}`).
//!
//! Where a setting takes the Go connector's templates unchanged ([`RecordTemplate::compile_go`],
//! for `partitionKeyTemplate`), a Go template of the subset [`go`] describes is translated to
//! Handlebars calling the `go` and `index` helpers, which print values as Go does; every
//! template can call them.

pub(crate) mod go;

use std::sync::LazyLock;

use handlebars::Handlebars;
use serde_json::{Map, Value};

use crate::proto::opencdc::v1::{data, Data, Operation, Record};

/// A compiled template. Rendering never HTML-escapes.
#[derive(Clone)]
pub struct RecordTemplate {
    registry: Handlebars<'static>,
    /// Boxed: templates sit in enums of settings and formats, which should stay small.
    texts: Box<Texts>,
    /// Templates without any `{{` render to themselves; no need to build a context.
    literal: bool,
    /// Set when the template may call the `go` or `index` helpers: the parts of the record
    /// the context's typed view must carry.
    go_fields: Option<go::Fields>,
}

#[derive(Clone)]
struct Texts {
    /// The Handlebars source.
    source: String,
    /// The Go template it was translated from.
    translated_from: Option<String>,
}

impl std::fmt::Debug for RecordTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RecordTemplate")
            .field(&self.texts.source)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    GoSyntax(String),
    #[error("is not a valid Handlebars template: {0}")]
    Syntax(String),
    #[error("could not render: {0}")]
    Render(String),
}

const NAME: &str = "t";

static GO_TEMPLATE: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"\{\{-?\s*\(*\s*(\.[A-Za-z]|\.\s*-?\}\}|/\*|index\s|printf\s|if\s+\.|range\s|with\s|\$)|\{\{- ",
    )
        .expect("valid pattern")
});

/// Names the `go` or `index` helper (perhaps not as a helper: then the typed view is built for
/// nothing).
static GO_HELPERS: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\b(go|index)\b").expect("valid pattern"));

impl RecordTemplate {
    /// A Handlebars template; Go templates are refused with a Handlebars suggestion.
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        if GO_TEMPLATE.is_match(source) {
            return Err(TemplateError::GoSyntax(format!(
                "looks like a Go template ({source:?}); this connector uses Handlebars: try {:?}",
                suggest_handlebars(source)
            )));
        }
        let go_fields = GO_HELPERS.is_match(source).then_some(go::Fields::ALL);
        Self::handlebars(source, go_fields, None)
    }

    /// Like [`RecordTemplate::compile`], but a Go template of the supported subset (see
    /// [`go`]) is translated to Handlebars that renders what the Go connector renders; other
    /// Go templates are refused with a Handlebars suggestion.
    pub fn compile_go(source: &str) -> Result<Self, TemplateError> {
        if !GO_TEMPLATE.is_match(source) {
            return Self::compile(source);
        }
        match go::translate(source) {
            Ok(translation) => Self::handlebars(
                &translation.handlebars,
                Some(translation.fields),
                Some(source.to_string()),
            ),
            Err(reason) => Err(TemplateError::GoSyntax(format!(
                "is a Go template ({source:?}) outside the subset this connector translates \
                 ({reason}); write it in Handlebars: try {:?}",
                suggest_handlebars(source)
            ))),
        }
    }

    fn handlebars(
        source: &str,
        go_fields: Option<go::Fields>,
        translated_from: Option<String>,
    ) -> Result<Self, TemplateError> {
        let mut registry = Handlebars::new();
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("go", Box::new(go::GoHelper));
        registry.register_helper("index", Box::new(go::IndexHelper));
        registry
            .register_template_string(NAME, source)
            .map_err(|e| TemplateError::Syntax(e.to_string()))?;
        if let Some(template) = registry.get_template(NAME) {
            refuse_unbounded_recursion(template)?;
        }
        Ok(RecordTemplate {
            registry,
            texts: Box::new(Texts {
                source: source.to_string(),
                translated_from,
            }),
            literal: !source.contains("{{"),
            go_fields,
        })
    }

    /// The Handlebars source (the translation, for a translated Go template).
    pub fn source(&self) -> &str {
        &self.texts.source
    }

    /// The Go template this one was translated from, if it was.
    pub fn translated_from(&self) -> Option<&str> {
        self.texts.translated_from.as_deref()
    }

    /// True when the template has no placeholders.
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    pub fn render(&self, record: &Record) -> Result<String, TemplateError> {
        if self.literal {
            return Ok(self.texts.source.clone());
        }
        let Some(fields) = self.go_fields else {
            return self.render_value(&record_context(record));
        };
        // A translated template reads the typed view only.
        let mut context = match self.texts.translated_from {
            Some(_) => Map::new(),
            None => match record_context(record) {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        };
        context.insert(go::VIEW_KEY.into(), go::view(record, fields));
        self.render_value(&Value::Object(context))
    }

    /// Renders with a prepared context (see [`record_context`]) when several templates
    /// render the same record.
    pub fn render_value(&self, context: &Value) -> Result<String, TemplateError> {
        if self.literal {
            return Ok(self.texts.source.clone());
        }
        self.registry
            .render(NAME, context)
            .map_err(|e| TemplateError::Render(e.to_string()))
    }
}

/// Blocks (`{{#if}}`, `{{#each}}`, ...) nested deeper than this are refused: Handlebars
/// renders them by recursion (a few hundred levels overflow a 2 MiB stack in a debug build).
pub(crate) const MAX_BLOCK_DEPTH: usize = 64;

/// Refuses what Handlebars would render by unbounded recursion, which overflows the stack and
/// aborts the process: partials (no partials are registered here and a partition key has no use
/// for them, but an inline one can use itself, `{{#*inline "p"}}{{> p}}{{/inline}}{{> p}}`, and
/// `{{> t}}` names the template itself) and blocks nested deeper than [`MAX_BLOCK_DEPTH`].
fn refuse_unbounded_recursion(template: &handlebars::Template) -> Result<(), TemplateError> {
    use handlebars::template::TemplateElement as E;
    let mut pending = vec![(template, 0)];
    while let Some((template, depth)) = pending.pop() {
        if depth > MAX_BLOCK_DEPTH {
            return Err(TemplateError::Syntax(format!(
                "nests blocks more than {MAX_BLOCK_DEPTH} deep"
            )));
        }
        for element in &template.elements {
            match element {
                E::PartialExpression(_) | E::PartialBlock(_) => {
                    return Err(TemplateError::Syntax(
                        "uses a partial ({{> ...}}), which this connector does not support (a \
                         partial can recurse without end): write the text out instead"
                            .to_string(),
                    ))
                }
                E::HelperBlock(helper) => pending.extend(
                    [&helper.template, &helper.inverse]
                        .into_iter()
                        .flatten()
                        .map(|body| (body, depth + 1)),
                ),
                E::DecoratorBlock(decorator) => {
                    pending.extend(decorator.template.iter().map(|body| (body, depth + 1)))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Rewrites common Go-template forms into their Handlebars equivalents, for error messages.
pub fn suggest_handlebars(go: &str) -> String {
    static INDEX: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r#"index\s+\.([A-Za-z][A-Za-z0-9_.]*)\s+"([^"]*)""#)
            .expect("valid pattern")
    });
    static FIELD: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"(^|[\s(])\.([A-Za-z])").expect("valid pattern"));
    static TRIM: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new(r"\{\{-?\s*|\s*-?\}\}").expect("valid pattern"));
    let converted = INDEX.replace_all(go, r#"lookup $1 "$2""#);
    let converted = FIELD.replace_all(&converted, "$1$2");
    TRIM.replace_all(&converted, |caps: &regex::Captures| {
        if caps[0].contains("{{") {
            "{{".to_string()
        } else {
            "}}".to_string()
        }
    })
    .into_owned()
}

/// The record as template data: `Position`, `Operation`, `Metadata`, `Key`,
/// `Payload.Before`, `Payload.After`. Raw data renders as (lossy UTF-8) text, structured data
/// as an object whose fields can be addressed.
pub(crate) fn record_context(record: &Record) -> Value {
    let mut payload = Map::new();
    let (before, after) = record
        .payload
        .as_ref()
        .map(|p| (data_value(p.before.as_ref()), data_value(p.after.as_ref())))
        .unwrap_or((Value::Null, Value::Null));
    payload.insert("Before".into(), before);
    payload.insert("After".into(), after);
    let metadata: Map<String, Value> = record
        .metadata
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
    let mut context = Map::new();
    context.insert(
        "Position".into(),
        Value::from(String::from_utf8_lossy(&record.position).into_owned()),
    );
    context.insert(
        "Operation".into(),
        Value::from(operation_name(record.operation)),
    );
    context.insert("Metadata".into(), Value::Object(metadata));
    context.insert("Key".into(), data_value(record.key.as_ref()));
    context.insert("Payload".into(), Value::Object(payload));
    Value::Object(context)
}

/// OpenCDC operation names as Conduit writes them.
pub(crate) fn operation_name(operation: i32) -> &'static str {
    match Operation::try_from(operation) {
        Ok(Operation::Create) => "create",
        Ok(Operation::Update) => "update",
        Ok(Operation::Delete) => "delete",
        Ok(Operation::Snapshot) => "snapshot",
        _ => "unspecified",
    }
}

/// Data as template value: raw bytes as text, structured data as an object.
pub(crate) fn data_value(data: Option<&Data>) -> Value {
    match data.and_then(|d| d.data.as_ref()) {
        None => Value::Null,
        Some(data::Data::RawData(bytes)) => {
            Value::from(String::from_utf8_lossy(bytes).into_owned())
        }
        Some(data::Data::StructuredData(structure)) => struct_to_json(structure),
    }
}

/// A protobuf `Struct` as JSON.
pub fn struct_to_json(structure: &prost_types::Struct) -> Value {
    Value::Object(
        structure
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), proto_value_to_json(v)))
            .collect(),
    )
}

pub(crate) fn proto_value_to_json(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => number_to_json(*n),
        Some(Kind::StringValue(s)) => match super::exact::exact_integer(s) {
            Some(digits) => digits
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(digits)),
            None => Value::from(s.as_str()),
        },
        Some(Kind::BoolValue(b)) => Value::from(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.iter().map(proto_value_to_json).collect())
        }
    }
}

/// Whole numbers render without a fraction (`42`, not `42.0`), as Go's encoder writes them.
fn number_to_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::format::testing::structured_kinds;
    use crate::proto::opencdc::v1::Change;
    use prost_types::value::Kind;

    fn structured(fields: &[(&str, Kind)]) -> Data {
        structured_kinds(fields).expect("structured data")
    }

    fn record() -> Record {
        Record {
            position: b"pos-1".to_vec(),
            operation: Operation::Update as i32,
            metadata: [("opencdc.collection".to_string(), "orders".to_string())].into(),
            key: Some(Data {
                data: Some(data::Data::RawData(b"customer-7".to_vec().into())),
            }),
            payload: Some(Change {
                before: None,
                after: Some(structured(&[
                    ("id", Kind::NumberValue(42.0)),
                    ("region", Kind::StringValue("eu & <us>".into())),
                ])),
            }),
        }
    }

    #[test]
    fn renders_record_fields_without_escaping() {
        let t = RecordTemplate::compile(
            "{{Operation}}:{{Key}}:{{Payload.After.id}}:{{Payload.After.region}}",
        )
        .unwrap();
        assert_eq!(
            t.render(&record()).unwrap(),
            "update:customer-7:42:eu & <us>"
        );
    }

    #[test]
    fn metadata_with_dots() {
        let t = RecordTemplate::compile(
            r#"{{lookup Metadata "opencdc.collection"}}-{{Metadata.[opencdc.collection]}}"#,
        )
        .unwrap();
        assert_eq!(t.render(&record()).unwrap(), "orders-orders");
    }

    #[test]
    fn literal_templates_render_themselves() {
        let t = RecordTemplate::compile("orders").unwrap();
        assert!(t.is_literal());
        assert_eq!(t.render(&record()).unwrap(), "orders");
    }

    #[test]
    fn missing_fields_render_empty() {
        let t = RecordTemplate::compile("{{Payload.After.nope}}").unwrap();
        assert_eq!(t.render(&record()).unwrap(), "");
    }

    #[test]
    fn go_templates_are_rejected_with_the_handlebars_equivalent() {
        let err = RecordTemplate::compile("{{ .Key }}").unwrap_err();
        assert!(err.to_string().contains("try \"{{Key}}\""), "{err}");
        let err =
            RecordTemplate::compile(r#"{{ index .Metadata "opencdc.collection" }}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"{{lookup Metadata \"opencdc.collection\"}}"#),
            "{err}"
        );
        let err = RecordTemplate::compile("prefix-{{ .Payload.After.id }}").unwrap_err();
        assert!(
            err.to_string().contains("prefix-{{Payload.After.id}}"),
            "{err}"
        );
    }

    #[test]
    fn bad_handlebars_is_a_syntax_error() {
        let err = RecordTemplate::compile("{{#if}}").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{err:?}");
    }
}
