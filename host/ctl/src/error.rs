//! How conclavectl fails: etcdctl's exit codes, and an error that carries one with the message
//! printed as `Error: <message>` on stderr.

use conclave_client::Error as ClientError;

/// etcdctl's exit codes (ctlv3/command/error.go).
pub mod exit {
    /// Everything went well.
    pub const SUCCESS: u8 = 0;
    /// A request failed.
    pub const ERROR: u8 = 1;
    /// No connection could be made.
    pub const BAD_CONNECTION: u8 = 2;
    /// Malformed input on stdin (txn).
    pub const INVALID_INPUT: u8 = 3;
    /// A valid flag with an unsupported value.
    pub const BAD_FEATURE: u8 = 4;
    /// Wrong arguments.
    pub const BAD_ARGS: u8 = 128;
}

/// A failed command: the exit code, and the message to print (none: exit quietly, as
/// `endpoint status` does after reporting each failure itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlError {
    pub code: u8,
    pub message: Option<String>,
}

impl CtlError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: Some(message.into()),
        }
    }

    pub fn quiet(code: u8) -> Self {
        Self {
            code,
            message: None,
        }
    }

    pub fn bad_args(message: impl Into<String>) -> Self {
        Self::new(exit::BAD_ARGS, message)
    }

    pub fn bad_feature(message: impl Into<String>) -> Self {
        Self::new(exit::BAD_FEATURE, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(exit::INVALID_INPUT, message)
    }

    /// A request that failed: etcd's message as etcdctl prints it.
    pub fn request(e: &ClientError) -> Self {
        Self::new(exit::ERROR, client_message(e))
    }

    /// A connection that could not be made.
    pub fn connect(e: &ClientError) -> Self {
        Self::new(exit::BAD_CONNECTION, client_message(e))
    }

    /// Writing the output failed (a closed pipe is not worth a message).
    pub fn output(e: &std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Self::quiet(exit::ERROR)
        } else {
            Self::new(exit::ERROR, e.to_string())
        }
    }
}

impl From<std::io::Error> for CtlError {
    fn from(e: std::io::Error) -> Self {
        CtlError::output(&e)
    }
}

/// The text etcdctl would print for a client error; a timeout reads as Go's context error,
/// which scripts written for etcdctl look for.
pub fn client_message(e: &ClientError) -> String {
    match e {
        ClientError::Timeout(_) => "context deadline exceeded".to_string(),
        other => other.to_string(),
    }
}
