//! conclavectl's command line end to end, for everything decided before a server is reached:
//! usage errors and their exit codes, txn input errors, and failing to connect. Runs against a
//! live server belong to the root package's tests/, where the `conclave` binary is built.

use std::net::TcpListener;

struct Outcome {
    code: u8,
    stdout: String,
    stderr: String,
}

fn ctl(args: &[&str], stdin: &str) -> Outcome {
    let mut input = stdin.as_bytes();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let argv = std::iter::once("conclavectl").chain(args.iter().copied());
    let code = conclave_ctl::run(argv, &mut input, &mut stdout, &mut stderr);
    Outcome {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// An endpoint where nothing listens: a port the OS just handed out and took back.
fn closed_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    addr.to_string()
}

#[test]
fn argument_errors_use_etcdctl_messages_and_codes() {
    let cases: &[(&[&str], u8, &str)] = &[
        (
            &["get"],
            128,
            "Error: get command needs one argument as key and an optional argument as range_end\n",
        ),
        (
            &["get", "k", "--prefix", "--from-key"],
            128,
            "Error: `--prefix` and `--from-key` cannot be set at the same time, choose one\n",
        ),
        (
            &["get", "k", "--consistency", "x"],
            4,
            "Error: unknown consistency flag \"x\"\n",
        ),
        (
            &["get", "k", "--order", "up"],
            4,
            "Error: bad sort order up\n",
        ),
        (
            &["get", "k", "-w", "table"],
            4,
            "Error: table not supported as output format\n",
        ),
        (
            &["get", "k", "-w", "yaml"],
            4,
            "Error: unsupported output format\n",
        ),
        (
            &["get", "k", "--print-value-only", "-w", "json"],
            128,
            "Error: print-value-only is only for `--write-out=simple`\n",
        ),
        (
            &["put"],
            128,
            "Error: put command needs 1 argument and input from stdin or 2 arguments\n",
        ),
        (
            &["put", "k", "v", "--lease", "zz"],
            128,
            "Error: bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex\n",
        ),
        (
            &["del", "a", "b", "c"],
            128,
            "Error: del command needs one argument as key and an optional argument as range_end\n",
        ),
        (
            &["txn", "extra"],
            128,
            "Error: txn command does not accept argument\n",
        ),
        (
            &["compaction"],
            128,
            "Error: compaction command needs 1 argument\n",
        ),
        (
            &["compaction", "x"],
            1,
            "Error: strconv.ParseInt: parsing \"x\": invalid syntax\n",
        ),
    ];
    for (args, code, stderr) in cases {
        let out = ctl(args, "");
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (*code, *stderr),
            "{args:?}"
        );
        assert_eq!(out.stdout, "", "{args:?}");
    }
}

#[test]
fn put_without_value_or_stdin_fails() {
    let out = ctl(&["put", "k"], "");
    assert_eq!(out.code, 128);
}

#[test]
fn txn_input_errors_exit_3_before_connecting() {
    let cases = [
        ("value(\"k1\") = \"nope\"\n", "Error: EOF\n"),
        (
            "valu(\"k1\") = \"x\"\n\n\n\n",
            "Error: malformed comparison: valu(\"k1\") = \"x\" (unknown target valu)\n",
        ),
        (
            "version(\"k1\") = \"x\"\n\n\n\n",
            "Error: invalid txn compare request: version(\"k1\") = \"x\"\n",
        ),
        ("\nfoo k1\n\n\n", "Error: invalid txn request: foo k1\n"),
        ("\nput\n\n\n", "Error: invalid txn compare request: put\n"),
    ];
    for (input, stderr) in cases {
        let out = ctl(&["--endpoints", &closed_endpoint(), "txn"], input);
        assert_eq!((out.code, out.stderr.as_str()), (3, stderr), "{input:?}");
    }
}

#[test]
fn interactive_txn_prompts_on_stdout() {
    let out = ctl(&["--endpoints", &closed_endpoint(), "txn", "-i"], "\n\n\n");
    assert_eq!(
        out.stdout,
        "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"
    );
    // The transaction itself cannot be sent: nothing listens there.
    assert_eq!(out.code, 2);
}

#[test]
fn unreachable_endpoints_exit_2() {
    let ep = closed_endpoint();
    let out = ctl(&["--endpoints", &ep, "get", "k"], "");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with(&format!("Error: cannot connect to {ep}")),
        "{}",
        out.stderr
    );
}

#[test]
fn endpoint_health_reports_each_endpoint() {
    let ep = closed_endpoint();
    let out = ctl(&["--endpoints", &ep, "endpoint", "health"], "");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "{ep} is unhealthy: failed to commit proposal: cannot connect"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.ends_with("Error: unhealthy cluster\n"),
        "{}",
        out.stderr
    );

    let out = ctl(
        &["--endpoints", &ep, "endpoint", "health", "-w", "json"],
        "",
    );
    assert!(
        out.stdout.starts_with(&format!(
            "[{{\"endpoint\":\"{ep}\",\"health\":false,\"took\":\"\",\"error\":"
        )),
        "{}",
        out.stdout
    );
}

#[test]
fn endpoint_status_reports_failures_quietly() {
    let ep = closed_endpoint();
    let out = ctl(
        &["--endpoints", &ep, "endpoint", "status", "-w", "json"],
        "",
    );
    assert_eq!((out.code, out.stdout.as_str()), (1, "[]\n"));
    assert!(
        out.stderr.starts_with(&format!(
            "Failed to get the status of endpoint {ep} (cannot connect"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn help_and_usage() {
    let out = ctl(&["--help"], "");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("endpoint"), "{}", out.stdout);
    let out = ctl(&[], "");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Usage"), "{}", out.stdout);
    let out = ctl(&["frobnicate"], "");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Error: unrecognized subcommand 'frobnicate'"),
        "{}",
        out.stderr
    );
}
