//! Service discovery through the root crate's ServiceRegistry on a real server: instances
//! register, a client discovers them and follows changes, entries are in etcd's
//! endpoints-manager format, and an instance that goes away (deregisters, or its process
//! stops keeping its lease alive) leaves within its TTL.

use crate::common;

use std::time::{Duration, Instant};

use common::Server;
use conclave::{Change, Client, GetOptions, ServiceRegistry};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_register_are_discovered_and_leave() {
    let s = Server::start();
    let client = Client::connect([s.endpoint()]).await.expect("connect");
    let registry = ServiceRegistry::new(client.clone());
    let one = registry
        .register(
            "payments",
            "pay-1",
            "10.0.0.1:8443",
            json!({"zone": "a"}),
            2,
        )
        .await
        .expect("register pay-1");
    let two = registry
        .register("payments", "pay-2", "10.0.0.2:8443", json!(null), 2)
        .await
        .expect("register pay-2");

    // etcd's endpoints-manager format, byte for byte what Go's naming package writes.
    let raw = client
        .get("payments/pay-1", GetOptions::new())
        .await
        .expect("get");
    let value: serde_json::Value = serde_json::from_slice(&raw.kvs[0].value).expect("JSON");
    assert_eq!(
        value,
        json!({"Op": 0, "Addr": "10.0.0.1:8443", "Metadata": {"zone": "a"}})
    );

    let mut found = registry.discover("payments").await.expect("discover");
    let names: Vec<String> = found.instances().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["pay-1", "pay-2"]);

    // A third arrives; the first deregisters; the second's process stops renewing its lease.
    let _three = registry
        .register(
            "payments",
            "pay-3",
            "10.0.0.3:8443",
            json!({"zone": "b"}),
            2,
        )
        .await
        .expect("register pay-3");
    one.deregister().await.expect("deregister");
    let stopped = Instant::now();
    drop(two);
    let mut changes = Vec::new();
    while changes.len() < 3 {
        let change = tokio::time::timeout(Duration::from_secs(10), found.next_change())
            .await
            .expect("a change in time")
            .expect("discovery goes on")
            .expect("a healthy change");
        changes.push(change);
    }
    assert!(
        matches!(&changes[0], Change::Up(i) if i.name == "pay-3" && i.address == "10.0.0.3:8443")
    );
    assert_eq!(
        changes[1],
        Change::Down {
            name: "pay-1".into()
        }
    );
    assert_eq!(
        changes[2],
        Change::Down {
            name: "pay-2".into()
        }
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "pay-2 left within its TTL"
    );
    let names: Vec<String> = found.instances().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["pay-3"]);
}
