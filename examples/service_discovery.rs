//! Service discovery: instances register under a lease for as long as they run; a client
//! discovers them and follows them coming and going. Kill an instance (even with kill -9)
//! and the client sees it leave within its TTL (5 s).
//!
//! Against a local cluster (`cargo run --release --bin conclave -- dev --members 3`):
//!
//! ```sh
//! cargo run --example service_discovery -- register pay-1 10.0.0.1:8443 &
//! cargo run --example service_discovery -- register pay-2 10.0.0.2:8443 &
//! cargo run --example service_discovery -- register pay-3 10.0.0.3:8443 &
//! cargo run --example service_discovery -- watch
//! ```
//!
//! Endpoints come from CONCLAVE_ENDPOINTS (comma-separated), by default the dev cluster's.

use conclave::{Change, Client, ServiceRegistry};

const DEV_ENDPOINTS: &str = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379";
const SERVICE: &str = "payments";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let endpoints = std::env::var("CONCLAVE_ENDPOINTS").unwrap_or_else(|_| DEV_ENDPOINTS.into());
    let registry = ServiceRegistry::new(Client::connect(endpoints.split(',')).await?);
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["register", instance, address] => {
            // A 5 s TTL: if this process dies, it leaves the registry within about 5 s. A
            // registration whose lease ran out (a member was down too long) registers again.
            loop {
                let metadata = serde_json::json!({"pid": std::process::id()});
                let registration = match registry
                    .register(SERVICE, instance, address, metadata, 5)
                    .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("register failed ({e}); trying again");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        continue;
                    }
                };
                println!("registered {} at {address}", registration.key());
                tokio::select! {
                    _ = registration.lost() => println!("registration lost; registering again"),
                    _ = tokio::signal::ctrl_c() => {
                        registration.deregister().await?;
                        return Ok(());
                    }
                }
            }
        }
        ["watch"] => {
            let mut found = registry.discover(SERVICE).await?;
            for instance in found.instances() {
                println!("up {} {}", instance.name, instance.address);
            }
            println!("watching");
            while let Some(change) = found.next_change().await {
                match change? {
                    Change::Up(instance) => println!("up {} {}", instance.name, instance.address),
                    Change::Down { name } => println!("down {name}"),
                }
            }
        }
        _ => {
            eprintln!("usage: service_discovery register <instance> <address> | watch");
            std::process::exit(2);
        }
    }
    Ok(())
}
