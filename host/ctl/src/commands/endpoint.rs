//! `endpoint status` and `endpoint health`: ask each endpoint on its own connection, and print
//! etcdctl's lines, JSON or table.

use std::time::Instant;

use clap::Subcommand;
use conclave_client::proto::etcdserverpb::StatusResponse;
use conclave_client::{Client, Code, GetOptions, messages};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::context::{Context, Io};
use crate::error::{CtlError, client_message, exit};
use crate::gofmt::{format_duration, humanize_bytes};
use crate::json::{self, Health};
use crate::output::Format;
use crate::table;

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum EndpointCommand {
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
}

pub fn run(ctx: &Context, cmd: &EndpointCommand, io: &mut Io<'_>) -> Result<(), CtlError> {
    match cmd {
        EndpointCommand::Status => status(ctx, io),
        EndpointCommand::Health => health(ctx, io),
    }
}

async fn connect(ctx: &Context, endpoint: &str) -> Result<Client, String> {
    Client::connect_with([endpoint], ctx.client_options())
        .await
        .map_err(|e| client_message(&e))
}

fn status(ctx: &Context, io: &mut Io<'_>) -> Result<(), CtlError> {
    let mut list: Vec<(String, StatusResponse)> = Vec::new();
    let mut failed = false;
    for ep in &ctx.endpoints {
        let result = ctx.block_on(async {
            let client = connect(ctx, ep).await?;
            client.status().await.map_err(|e| client_message(&e))
        });
        match result {
            Ok(s) => list.push((ep.clone(), s)),
            Err(e) => {
                failed = true;
                writeln!(io.stderr, "Failed to get the status of endpoint {ep} ({e})")?;
            }
        }
    }
    match ctx.format {
        Format::Json => writeln!(io.stdout, "{}", json::endpoint_statuses(&list))?,
        Format::Simple => {
            for row in status_rows(&list) {
                writeln!(io.stdout, "{}", row.join(", "))?;
            }
        }
        Format::Table => table::render(io.stdout, &STATUS_HEADERS, &status_rows(&list))?,
    }
    if failed {
        return Err(CtlError::quiet(exit::ERROR));
    }
    Ok(())
}

const STATUS_HEADERS: [&str; 10] = [
    "endpoint",
    "ID",
    "version",
    "db size",
    "is leader",
    "is learner",
    "raft term",
    "raft index",
    "raft applied index",
    "errors",
];

fn status_rows(list: &[(String, StatusResponse)]) -> Vec<Vec<String>> {
    list.iter()
        .map(|(ep, s)| {
            let member = s.header.as_ref().map_or(0, |h| h.member_id);
            vec![
                ep.clone(),
                format!("{member:x}"),
                s.version.clone(),
                // Go converts the int64 to uint64 before humanizing.
                humanize_bytes(s.db_size as u64),
                (s.leader == member).to_string(),
                s.is_learner.to_string(),
                s.raft_term.to_string(),
                s.raft_index.to_string(),
                s.raft_applied_index.to_string(),
                s.errors.join(", "),
            ]
        })
        .collect()
}

/// One endpoint: healthy if a linearizable read of "health" goes through (permission denied
/// counts, since the read still went through consensus).
async fn check(ctx: &Context, endpoint: String) -> Health {
    let client = match connect(ctx, &endpoint).await {
        Ok(c) => c,
        Err(error) => {
            return Health {
                endpoint,
                healthy: false,
                took: String::new(),
                error,
            };
        }
    };
    let start = Instant::now();
    let result = client.get("health", GetOptions::new()).await;
    let took = format_duration(start.elapsed());
    let error = match result {
        Ok(_) => String::new(),
        Err(conclave_client::Error::Status {
            code: Code::PermissionDenied,
            message,
        }) if message == messages::PERMISSION_DENIED => String::new(),
        Err(e) => client_message(&e),
    };
    Health {
        endpoint,
        healthy: error.is_empty(),
        took,
        error,
    }
}

fn health(ctx: &Context, io: &mut Io<'_>) -> Result<(), CtlError> {
    // In completion order, as etcdctl collects them.
    let list: Vec<Health> = ctx.block_on(async {
        let checks: FuturesUnordered<_> = ctx
            .endpoints
            .iter()
            .map(|ep| check(ctx, ep.clone()))
            .collect();
        checks.collect().await
    });
    match ctx.format {
        // etcdctl prints these on stderr.
        Format::Simple => {
            for h in &list {
                if h.error.is_empty() {
                    writeln!(
                        io.stderr,
                        "{} is healthy: successfully committed proposal: took = {}",
                        h.endpoint, h.took
                    )?;
                } else {
                    writeln!(
                        io.stderr,
                        "{} is unhealthy: failed to commit proposal: {}",
                        h.endpoint, h.error
                    )?;
                }
            }
        }
        Format::Json => writeln!(io.stdout, "{}", json::endpoint_health(&list))?,
        Format::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|h| {
                    vec![
                        h.endpoint.clone(),
                        h.healthy.to_string(),
                        h.took.clone(),
                        h.error.clone(),
                    ]
                })
                .collect();
            table::render(io.stdout, &["endpoint", "health", "took", "error"], &rows)?;
        }
    }
    if list.iter().any(|h| !h.error.is_empty()) {
        return Err(CtlError::new(exit::ERROR, "unhealthy cluster"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_client::proto::etcdserverpb::ResponseHeader;

    #[test]
    fn status_rows_match_etcdctl_simple_output() {
        let s = StatusResponse {
            header: Some(ResponseHeader {
                member_id: 0x5b7406682598a90b,
                ..Default::default()
            }),
            version: "3.5.0".into(),
            db_size: 67108864,
            leader: 0x5b7406682598a90b,
            raft_index: 26,
            raft_term: 1,
            raft_applied_index: 26,
            ..Default::default()
        };
        let rows = status_rows(&[("127.0.0.1:23790".into(), s)]);
        assert_eq!(
            rows[0].join(", "),
            "127.0.0.1:23790, 5b7406682598a90b, 3.5.0, 67 MB, true, false, 1, 26, 26, "
        );
    }
}
