//! Network partitions between members on loopback, with nftables: a member's peer port (UDP,
//! where QUIC carries Raft and every member call) is cut off while its client port stays open,
//! so clients still reach a leader the others no longer hear. Each partition is a table of
//! its own, named for this process and partition, holding only the rules it added; dropping
//! the guard deletes exactly that table, so nothing else on the machine is touched.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// Debian's nftables package puts it here; scripts/test installs it.
const NFT: &str = "/usr/sbin/nft";

static PARTITIONS: AtomicU64 = AtomicU64::new(0);

/// A partition in force until dropped.
pub struct Partition {
    table: String,
}

impl Partition {
    /// Drops every UDP packet to or from `port` on this machine: the member listening there
    /// neither hears its peers nor is heard by them.
    pub fn isolate_udp_port(port: u16) -> Partition {
        Self::with_rules(&[format!("udp dport {port}"), format!("udp sport {port}")])
    }

    /// Drops every UDP packet from `from` to `to`, and nothing the other way: one-way loss,
    /// the member at `to` no longer hears the one at `from`, which still hears it.
    pub fn drop_one_way(from: u16, to: u16) -> Partition {
        Self::with_rules(&[format!("udp sport {from} udp dport {to}")])
    }

    /// A table of its own with a chain on the output hook (loopback traffic passes it once,
    /// in each direction) dropping what each of `matches` matches; applied as one script.
    fn with_rules(matches: &[String]) -> Partition {
        let table = format!(
            "conclave_test_{}_{}",
            std::process::id(),
            PARTITIONS.fetch_add(1, Ordering::Relaxed)
        );
        let mut script = format!(
            "add table inet {table}\n\
             add chain inet {table} out {{ type filter hook output priority 0; policy accept; }}\n"
        );
        for m in matches {
            script.push_str(&format!("add rule inet {table} out {m} drop\n"));
        }
        nft(&["-f", "-"], Some(&script));
        Partition { table }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        nft(&["delete", "table", "inet", &self.table], None);
    }
}

fn nft(args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new(NFT)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {NFT} (apt-get install nftables): {e}"));
    if let Some(text) = stdin
        && let Some(mut input) = child.stdin.take()
    {
        input
            .write_all(text.as_bytes())
            .expect("write the nft script");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait for nft");
    // A guard dropped while a test panics must not panic again; it says what it left.
    if !out.status.success() {
        let message = format!(
            "{NFT} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            panic!("{message}");
        }
    }
}
