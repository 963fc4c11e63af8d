//! The `go` and `index` Handlebars helpers.

use handlebars::{
    Context, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use super::print::{index, print_go, print_value, walk, Indexed};
use super::VIEW_KEY;

pub(super) fn view_of(ctx: &Context) -> Result<&Value, RenderError> {
    ctx.data()
        .get(VIEW_KEY)
        .ok_or_else(|| RenderErrorReason::Other("the go helper needs a record".into()).into())
}

pub(super) fn failed(helper: &str, message: String) -> RenderError {
    RenderErrorReason::Other(format!("{helper}: {message}")).into()
}

/// `{{go Payload.After.id}}`, `{{go (index Metadata "k")}}`: prints as Go's template does.
pub(crate) struct GoHelper;

impl HelperDef for GoHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg handlebars::Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let [param] = h.params().as_slice() else {
            return Err(failed("go", "takes one value".into()));
        };
        let printed = match param.relative_path() {
            Some(path) => {
                let value = walk(view_of(ctx)?, path).map_err(|e| failed("go", e))?;
                print_go(value).map_err(|e| failed("go", e))?
            }
            None if param.is_value_missing() => "<no value>".into(),
            None => print_value(param.value()),
        };
        Ok(ScopedJson::Derived(Value::String(printed)))
    }
}

/// `(index Metadata "opencdc.collection")`, `(index Payload.After "tags" 0)`: Go's `index`.
/// Its result is meant for `go`, which prints it.
pub(crate) struct IndexHelper;

impl HelperDef for IndexHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg handlebars::Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let Some((item, keys)) = h.params().split_first() else {
            return Err(failed("index", "takes a record path and keys".into()));
        };
        let Some(path) = item.relative_path() else {
            return Err(failed("index", "takes a record path first".into()));
        };
        let item = walk(view_of(ctx)?, path).map_err(|e| failed("index", e))?;
        let keys: Vec<&Value> = keys.iter().map(|k| k.value()).collect();
        match index(item, &keys).map_err(|e| failed("index", e))? {
            Indexed::NoValue => Ok(ScopedJson::Missing),
            Indexed::Value(v) => Ok(ScopedJson::Derived(v)),
        }
    }
}
