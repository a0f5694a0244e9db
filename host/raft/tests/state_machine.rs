//! The state machine over the real store, checked by openraft's own storage suite (with the
//! real log store beside it), plus snapshot round trips between two state machines.

use std::sync::Arc;

use conclave_raft::{LogStore, StateMachine, TypeConfig};
use conclave_store::Store;
use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(&dir.path().join("raft"))
            .await
            .expect("open the log");
        let store = Arc::new(Store::open(&dir.path().join("store")).expect("open the store"));
        let sm = StateMachine::new(store, &dir.path().join("snapshots"), None)
            .expect("open the state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_with_the_real_state_machine() {
    Suite::test_all(Builder)
        .await
        .expect("openraft's storage suite");
}
