//! What every command gets: the global flags turned into client options, the async runtime to
//! drive requests on, and the process's standard streams (injected, so tests can capture them).

use std::ffi::OsString;
use std::future::Future;
use std::io::{BufRead, Write};
use std::time::Duration;

use conclave_client::{Client, ClientOptions};
use tokio::runtime::Runtime;

use crate::cli::GlobalArgs;
use crate::error::CtlError;
use crate::output::Format;

/// etcdctl's keep-alive defaults (`--keepalive-time`, `--keepalive-timeout`).
const KEEP_ALIVE_TIME: Duration = Duration::from_secs(2);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(6);

/// The standard streams.
pub struct Io<'a> {
    pub stdin: &'a mut dyn BufRead,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// The global settings and the runtime.
pub struct Context {
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub format: Format,
    pub hex: bool,
    runtime: Runtime,
}

impl Context {
    pub fn new(global: &GlobalArgs) -> Result<Context, CtlError> {
        let format = Format::parse(&global.write_out)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CtlError::new(crate::error::exit::ERROR, e.to_string()))?;
        Ok(Context {
            endpoints: global
                .endpoints
                .iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect(),
            dial_timeout: global.dial_timeout,
            command_timeout: global.command_timeout,
            format,
            hex: global.hex,
            runtime,
        })
    }

    /// Client options from the flags: the dial timeout to connect, the command timeout for
    /// each request.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions::new()
            .with_connect_timeout(self.dial_timeout)
            .with_request_timeout(self.command_timeout)
            .with_keep_alive(KEEP_ALIVE_TIME, KEEP_ALIVE_TIMEOUT)
    }

    /// A client balanced over every endpoint.
    pub fn client(&self) -> Result<Client, CtlError> {
        self.block_on(Client::connect_with(&self.endpoints, self.client_options()))
            .map_err(|e| CtlError::connect(&e))
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// A command-line argument's bytes: keys and values need not be UTF-8.
pub fn os_bytes(arg: &OsString) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        arg.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        arg.to_string_lossy().into_owned().into_bytes()
    }
}

/// The argument for these bytes (the inverse of [`os_bytes`]).
pub fn bytes_os(bytes: Vec<u8>) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(bytes)
    }
    #[cfg(not(unix))]
    {
        OsString::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}
