//! The SDK's one error type: what can be wrong in a plugin's config as the helpers read it.

use std::fmt;

/// A config value the helpers refuse. Its text is meant to reach the operator unchanged (a
/// plugin's `init` returns it, and the host refuses the deploy with it), so it names the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a duration, or not a whole number of milliseconds.
    BadDuration { input: String, reason: String },
    /// Not one of the aggregation type names.
    UnknownAggregation(String),
    /// A window length of zero, or one that does not fit in an i64 of milliseconds.
    BadResolution(u64),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadDuration { input, reason } => {
                write!(f, "bad duration {input:?}: {reason}")
            }
            Error::UnknownAggregation(name) => write!(
                f,
                "unknown aggregation {name:?} (known: {})",
                crate::AggregationType::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Error::BadResolution(ms) => {
                write!(
                    f,
                    "bad resolution {ms} ms: must be positive and below 2^63 ms"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// Plugins return `String` errors through the ABI; this lets `?` do the conversion.
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.to_string()
    }
}
