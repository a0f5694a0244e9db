//! Workers increment a shared counter under a lock, guarding every write with the lock's
//! fencing revision, so the count stays exact even when a worker dies holding the lock.
//!
//! Against a local cluster (`cargo run --release --bin conclave -- dev --members 3`):
//!
//! ```sh
//! cargo run --example lock -- worker-1 100 &
//! cargo run --example lock -- worker-2 100 &
//! wait; etcdctl get counter        # 200
//! ```
//!
//! Endpoints come from CONCLAVE_ENDPOINTS (comma-separated), by default the dev cluster's.

use std::time::Duration;

use conclave::{Client, Compare, GetOptions, PutOptions, Txn, TxnOp};

const DEV_ENDPOINTS: &str = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let worker = args.next().unwrap_or_else(|| "worker".into());
    let rounds: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    let endpoints = std::env::var("CONCLAVE_ENDPOINTS").unwrap_or_else(|_| DEV_ENDPOINTS.into());
    let client = Client::connect(endpoints.split(',')).await?;

    let mut done = 0;
    while done < rounds {
        // A short lease: if this process dies holding the lock, it is free again in 2 s.
        let guard = match client.lock("counter-lock", 2).await {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("{worker}: lock failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let read = client.get("counter", GetOptions::new()).await;
        let Ok(read) = read else {
            continue;
        };
        let (now, read_at): (u64, i64) = read.kvs.first().map_or((0, 0), |kv| {
            let n = String::from_utf8_lossy(&kv.value).parse().unwrap_or(0);
            (n, kv.mod_revision)
        });
        // The write applies only while our lock key is still the one we created (a holder
        // that stalled past its lease cannot overwrite its successor's count), and only if
        // the counter is as we read it (so a retry after an unknown outcome is safe).
        let write = Txn::new()
            .when([guard.fence(), Compare::mod_revision("counter").eq(read_at)])
            .and_then([TxnOp::put(
                "counter",
                (now + 1).to_string(),
                PutOptions::new(),
            )]);
        match client.txn(write).await {
            Ok(resp) if resp.succeeded => {
                done += 1;
                println!(
                    "{worker}: counter {} (fencing revision {})",
                    now + 1,
                    guard.revision()
                );
            }
            Ok(_) => println!("{worker}: lost the lock before writing; retrying"),
            Err(e) => eprintln!("{worker}: write failed ({e}); retrying"),
        }
        let _ = guard.unlock().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("{worker}: done");
    Ok(())
}
