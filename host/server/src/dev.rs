//! `conclave dev --members N`: a local cluster for trying things out. Makes one CA and a
//! certificate per member, starts each member as a child process of this binary on etcd's
//! usual local ports (2379/2380, 22379/22380, 32379/32380, ...), prefixes their logs with
//! their names, and on Ctrl-C (or SIGTERM) stops them all cleanly and says where the data is.

use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::config::DevArgs;
use crate::serve::shutdown_signal;

/// Member i's (client, peer) ports, as etcd's Procfile numbers them.
fn ports(i: usize) -> (u32, u32) {
    let base = if i == 0 { 0 } else { 10_000 * (i as u32 + 1) };
    (base + 2379, base + 2380)
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.members == 0 || args.members > 6 {
        bail!("--members must be between 1 and 6");
    }
    let names: Vec<String> = (1..=args.members).map(|i| format!("m{i}")).collect();
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let certs = args.dir.join("certs");
    if !certs.join(conclave_tls::CA_CERT).exists() {
        conclave_tls::init_certs(&certs, &names, &[], false)
            .context("cannot make the cluster's certificates")?;
    }
    let initial_cluster = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}=https://127.0.0.1:{}", ports(i).1))
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut children: Vec<(String, Child)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (client, peer) = ports(i);
        let mut child = Command::new(&exe)
            .args(["--name", name])
            .arg("--data-dir")
            .arg(args.dir.join(name))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args(["--listen-peer-urls", &format!("https://127.0.0.1:{peer}")])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", "conclave-dev"])
            .arg("--peer-cert-file")
            .arg(conclave_tls::member_cert_path(&certs, name))
            .arg("--peer-key-file")
            .arg(conclave_tls::member_key_path(&certs, name))
            .arg("--peer-trusted-ca-file")
            .arg(certs.join(conclave_tls::CA_CERT))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start member {name}"))?;
        prefix_output(name, child.stdout.take());
        prefix_output(name, child.stderr.take());
        println!("{name}: client http://127.0.0.1:{client}, peer https://127.0.0.1:{peer}");
        children.push((name.clone(), child));
    }
    let endpoints = (0..args.members)
        .map(|i| format!("127.0.0.1:{}", ports(i).0))
        .collect::<Vec<_>>()
        .join(",");
    println!("cluster starting; try: etcdctl --endpoints={endpoints} endpoint status -w table");
    println!("Ctrl-C stops every member");

    // A member that exits (say, killed to watch a failover) is reported; the others go on.
    // Ctrl-C, or every member gone, ends the run.
    let mut running: Vec<usize> = (0..children.len()).collect();
    while !running.is_empty() {
        let exited = async {
            let mut waits: Vec<_> = children
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| running.contains(i))
                .map(|(i, (_, c))| Box::pin(async move { (i, c.wait().await) }))
                .collect();
            futures::future::select_all(waits.iter_mut()).await.0
        };
        tokio::select! {
            () = shutdown_signal() => break,
            (i, status) = exited => {
                eprintln!("member {} exited ({status:?}); the others keep running", children[i].0);
                running.retain(|r| *r != i);
            }
        }
    }
    for (name, child) in &mut children {
        if let Some(pid) = child.id() {
            // SIGTERM: each member stops cleanly. (A terminal's Ctrl-C reached them already.)
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if let Err(e) = child.wait().await {
            eprintln!("{name}: {e}");
        }
    }
    println!("stopped; data is in {}", args.dir.display());
    Ok(())
}

fn prefix_output(name: &str, out: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>) {
    let Some(out) = out else { return };
    let name = name.to_string();
    tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{name} | {line}");
        }
    });
}
