//! Go templates as the Go Kinesis connector (v0.2.0) runs them, translated to Handlebars.
//!
//! The Go connector executes `partitionKeyTemplate` with Go's `text/template` on an
//! `opencdc.Record` of conduit-commons v0.4.0 and prints every value with fmt's `%v` rules. A
//! subset of that language is translated here to Handlebars calling two helpers that follow
//! the same rules, so that a pipeline moves over without edits and gets the same keys:
//!
//! | Go template | Handlebars |
//! |---|---|
//! | literal text | the same text |
//! | `{{ .Key }}`, `{{ .Payload.After.id }}` (a field chain) | `{{go Key}}`, `{{go Payload.After.id}}` |
//! | `{{ index .Metadata "opencdc.collection" }}` | `{{go (index Metadata "opencdc.collection")}}` |
//! | `{{ index .Payload.After "tags" 0 }}` (string and integer keys) | `{{go (index Payload.After "tags" 0)}}` |
//! | `{{-` / `-}}` | applied to the text during the translation |
//! | `{{/* comment */}}` | dropped |
//!
//! Anything else (pipelines, functions other than `index`, `if`, `range`, `with`, variables,
//! methods such as `.Key.Bytes` or `.Metadata.GetCollection`) is outside the subset and refused.
//!
//! What `go` prints, by the Go type at that place (checked against Go 1.26 and
//! conduit-commons v0.4.0, see the tests):
//!
//! * `.Key`, `.Payload.Before`, `.Payload.After` (`opencdc.Data`): raw data is a `[]byte`
//!   without a `String` method, so `abc` prints `[97 98 99]`; structured data is a map; a
//!   missing one prints `<nil>`.
//! * `.Position` (`opencdc.Position` has a `String` method): its bytes as text, `<nil>` when
//!   empty. `.Operation`: `create`, `update`, `delete`, `snapshot`, else `Operation(n)`.
//! * `.Metadata`, structured data and maps inside it: `map[k1:v1 k2:v2]`, keys sorted.
//! * Numbers of structured data are `float64` (Conduit carries them in a protobuf `Struct`):
//!   shortest digits, exponent form below 1e-4 and from 1e6 on (`1234567` prints
//!   `1.234567e+06`); NaN and infinities arrive as the strings `NaN`, `Infinity`, `-Infinity`.
//!   Integers the schema decoder keeps exact (beyond 2^53) print their digits, as Go's
//!   `int64` does.
//! * A missing map key (`.Metadata.x`, `.Payload.After.x`) and a null field print
//!   `<no value>`; `index` on a missing metadata key gives the empty string (the zero value
//!   of `string`). Lists print as `[a b c]`, nulls inside values as `<nil>`.
//!
//! Where Go fails the template (a field of raw data or of a missing `Data`, an index out of
//! range, a key of the wrong type), rendering fails here too; the Go connector then fails the
//! whole batch, this one nacks the record.
//!
//! # The typed view
//!
//! The Handlebars context of a template that uses these helpers carries, under [`VIEW_KEY`],
//! the record as Go sees it (built by [`view`]): raw bytes as a tagged string (never text),
//! numbers of structured data as JSON floats. The ordinary fields of the context are not
//! changed, so `{{Key}}` still renders the key as text.

/// The context key under which the typed view of the record lives. Starts with a NUL, so no
/// ordinary path names it.
pub(crate) const VIEW_KEY: &str = "\u{0}go";

/// Marks raw bytes (hex after the tag) in the typed view, like [`crate::destination::exact`]
/// marks exact integers: control characters no record text starts with.
const BYTES_TAG: &str = "\u{0}\u{1}go-bytes:";

/// The fields of `opencdc.Record` a template can name.
const RECORD_FIELDS: [&str; 5] = ["Position", "Operation", "Metadata", "Key", "Payload"];

/// Exported methods of `opencdc.RawData` / `opencdc.StructuredData`: Go calls them instead of
/// looking up a field of that name.
const DATA_METHODS: [&str; 4] = ["Bytes", "Clone", "MarshalJSON", "ToProto"];

/// Which parts of the record a template reads, so the view carries only those (a raw payload
/// is not hex-encoded for a key template that reads `.Key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Fields(u8);

impl Fields {
    pub(crate) const ALL: Fields = Fields(0b1_1111);

    fn bit(name: &str) -> u8 {
        RECORD_FIELDS
            .iter()
            .position(|f| *f == name)
            .map_or(0, |i| 1 << i)
    }

    fn insert(&mut self, name: &str) {
        self.0 |= Self::bit(name);
    }

    fn contains(self, name: &str) -> bool {
        self.0 & Self::bit(name) != 0
    }
}

mod helpers;
mod print;
#[cfg(test)]
mod tests;
mod translate;
mod view;

pub(crate) use helpers::{GoHelper, IndexHelper};
#[cfg(test)]
use print::go_float;
pub(crate) use translate::translate;
pub(crate) use view::view;
