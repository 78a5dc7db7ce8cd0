//! Operation and calculator arguments: [`parse`] typed arguments from JSON
//! with field paths in errors ([`ArgError`]), and compose those paths when a
//! value parses a nested value itself ([`nested`]).

use crate::error::Error;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value as Json;

/// A bad argument: the path of the offending field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ArgError {
    /// The field path (`calculator.sigma`, `temperature[1].traj_frac`), or `-`
    /// for the value as a whole.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ArgError {
    /// An error in `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> ArgError {
        ArgError { field: field.into(), message: message.into() }
    }

    /// An error in the value as a whole.
    pub fn whole(message: impl Into<String>) -> ArgError {
        ArgError::new("-", message)
    }

    /// The same error seen from the value holding this one under `parent`:
    /// `sigma` within `calculator` is `calculator.sigma`.
    pub fn within(self, parent: &str) -> ArgError {
        ArgError { field: join_path(parent, &self.field), message: self.message }
    }

    /// The error as the op `context` reports it ([`Error::Args`]).
    pub fn in_context(self, context: &str) -> Error {
        Error::Args { context: context.to_string(), field: self.field, message: self.message }
    }
}

/// `parent` and `child` joined as a field path (`a.b`, `a[1]`).
fn join_path(parent: &str, child: &str) -> String {
    match (parent, child) {
        ("-" | "" | ".", c) => c.to_string(),
        (p, "-" | "" | ".") => p.to_string(),
        (p, c) if c.starts_with('[') => format!("{p}{c}"),
        (p, c) => format!("{p}.{c}"),
    }
}

/// Marks a nested error's field path inside a serde message, so that the
/// outer parse can join it to its own path instead of re-parsing.
const NESTED: char = '\u{1e}';

/// A serde error carrying `e`'s field path, for a `deserialize_with` function
/// that parses (and validates) a nested value itself.
pub fn nested_error<E: serde::de::Error>(e: ArgError) -> E {
    E::custom(format_args!("{NESTED}{}{NESTED}{}", e.field, e.message))
}

/// Parses typed arguments from JSON, naming the offending field on error
/// (`calculator.sigma: invalid type: string "x", expected f64`); errors
/// raised through [`nested_error`] keep their own path below the outer one.
pub fn parse<A: DeserializeOwned>(value: Json) -> Result<A, ArgError> {
    parse_from(value)
}

/// [`parse`] from any deserializer (for instance a map whose entries were reordered).
pub fn parse_from<'de, D: Deserializer<'de>, A: Deserialize<'de>>(de: D) -> Result<A, ArgError> {
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        match message.strip_prefix(NESTED).and_then(|rest| rest.split_once(NESTED)) {
            Some((field, inner)) => ArgError::new(field, inner).within(&path),
            None => ArgError::new(if path == "." { "-".to_string() } else { path }, message),
        }
    })
}

/// A `deserialize_with` function for a value that parses itself with
/// `from_json` (custom shapes, validation), keeping its field paths.
pub fn nested<'de, D, T>(d: D, from_json: impl FnOnce(Json) -> Result<T, ArgError>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    from_json(Json::deserialize(d)?).map_err(nested_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join() {
        assert_eq!(ArgError::new("sigma", "m").within("calculator").field, "calculator.sigma");
        assert_eq!(ArgError::new("[1].r_cut", "m").within("descriptor").field, "descriptor[1].r_cut");
        assert_eq!(ArgError::whole("m").within("calculator").field, "calculator");
        assert_eq!(ArgError::new("x", "m").within("-").field, "x");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // fields are read only through parsing
    struct Outer {
        steps: u64,
        #[serde(deserialize_with = "inner_list")]
        inner: Vec<u32>,
    }

    fn inner_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        nested(d, |v| match v {
            Json::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, x)| {
                    x.as_u64().map(|x| x as u32).ok_or_else(|| ArgError::new(format!("[{i}]"), "not a count"))
                })
                .collect(),
            _ => Err(ArgError::whole("expected a list")),
        })
    }

    #[test]
    fn nested_errors_compose_with_the_outer_path() {
        let e = parse::<Outer>(serde_json::json!({"steps": 1, "inner": [1, "x"]})).unwrap_err();
        assert_eq!(e, ArgError::new("inner[1]", "not a count"));
        let e = parse::<Outer>(serde_json::json!({"steps": 1, "inner": 3})).unwrap_err();
        assert_eq!(e, ArgError::new("inner", "expected a list"));
        let e = parse::<Outer>(serde_json::json!({"steps": "x", "inner": []})).unwrap_err();
        assert_eq!(e.field, "steps");
        let e = parse::<Outer>(serde_json::json!({"steps": 1, "inner": [], "extra": 1})).unwrap_err();
        assert_eq!(e.field, "extra");
        assert!(e.message.starts_with("unknown field `extra`"), "{e}");
    }
}
