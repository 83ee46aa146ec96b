//! What `$` and `$$` mean while evaluating paths, templates, intrinsics and Choice rules, and how
//! such an evaluation fails. Below `intrinsic` and `payload`, which both evaluate against an [`Env`].
use crate::jsonpath::JsonPath;
use serde_json::Value;
use std::borrow::Cow;

/// A failure while evaluating paths or intrinsics; the executor adds the state and event id to the cause.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub error: &'static str,
    pub message: String,
}

impl EvalError {
    pub fn runtime(message: String) -> EvalError {
        EvalError { error: crate::errors::RUNTIME, message }
    }

    pub fn intrinsic(message: String) -> EvalError {
        EvalError { error: crate::errors::INTRINSIC_FAILURE, message }
    }
}

/// The context object (`$$`), built on demand: most states never read it, and the whole object would
/// copy the execution input each time.
pub trait ContextSource {
    /// `$$`, or only its top-level field `part` when a path names one (`$$.Map...` builds just `Map`).
    fn build(&self, part: Option<&str>) -> Value;

    /// What `path` selects in `$$`: document-valued fields may be read in place rather than built.
    fn query(&self, path: &JsonPath) -> Option<Value>;
}

enum ContextRef<'a> {
    #[cfg(test)]
    Ready(&'a Value),
    Lazy(&'a dyn ContextSource),
}

/// What `$` and `$$` mean while evaluating one template.
pub struct Env<'a> {
    input: &'a Value,
    context: ContextRef<'a>,
}

impl<'a> Env<'a> {
    pub fn lazy(input: &'a Value, context: &'a dyn ContextSource) -> Env<'a> {
        Env { input, context: ContextRef::Lazy(context) }
    }

    #[cfg(test)]
    pub fn with_context(input: &'a Value, context: &'a Value) -> Env<'a> {
        Env { input, context: ContextRef::Ready(context) }
    }

    pub fn root_for(&self, path: &JsonPath) -> Cow<'a, Value> {
        if !path.is_context() {
            return Cow::Borrowed(self.input);
        }
        match &self.context {
            #[cfg(test)]
            ContextRef::Ready(v) => Cow::Borrowed(*v),
            ContextRef::Lazy(source) => Cow::Owned(source.build(path.first_name())),
        }
    }

    pub fn resolve(&self, path: &JsonPath) -> Option<Value> {
        match &self.context {
            ContextRef::Lazy(source) if path.is_context() => source.query(path),
            _ => path.query(&self.root_for(path)),
        }
    }
}

/// A document as compact JSON text, as AWS quotes documents in error causes.
pub(crate) fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
