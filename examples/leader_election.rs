//! Processes campaign for leadership; the leader proclaims its name, and every process
//! prints each leader it observes. Kill the leader (even with kill -9) and another takes
//! over within the lease's TTL.
//!
//! Against a local cluster (`cargo run --release --bin conclave -- dev --members 3`):
//!
//! ```sh
//! cargo run --example leader_election -- alice &
//! cargo run --example leader_election -- bob &
//! cargo run --example leader_election -- carol
//! ```
//!
//! Endpoints come from CONCLAVE_ENDPOINTS (comma-separated), by default the dev cluster's.

use conclave::Client;

const DEV_ENDPOINTS: &str = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379";
const ELECTION: &str = "example-election";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let me = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "candidate".into());
    let endpoints = std::env::var("CONCLAVE_ENDPOINTS").unwrap_or_else(|_| DEV_ENDPOINTS.into());
    let client = Client::connect(endpoints.split(',')).await?;

    // Print every leader as it changes, in order.
    let mut observe = client.observe(ELECTION).await?;
    let observer_name = me.clone();
    tokio::spawn(async move {
        while let Some(resp) = observe.message().await {
            if let Some(kv) = resp.kv {
                println!(
                    "{observer_name}: leader is {}",
                    String::from_utf8_lossy(&kv.value)
                );
            }
        }
    });

    // A 5 s lease: a leader that dies is replaced within about 5 s. A campaign that fails
    // (its lease ran out while a member was down) simply campaigns again.
    loop {
        let leadership = match client.campaign(ELECTION, me.clone(), 5).await {
            Ok(leadership) => leadership,
            Err(e) => {
                eprintln!("{me}: campaign failed ({e}); campaigning again");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        println!(
            "{me}: elected (fencing revision {})",
            leadership.leader_key().rev
        );
        if let Err(e) = leadership.proclaim(format!("{me} (leading)")).await {
            eprintln!("{me}: proclaim failed ({e})");
        }
        tokio::select! {
            _ = leadership.lost() => println!("{me}: lost the leadership"),
            _ = tokio::signal::ctrl_c() => {
                leadership.resign().await?;
                println!("{me}: resigned");
                return Ok(());
            }
        }
    }
}
