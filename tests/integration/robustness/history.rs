//! A recorded history: every operation a workload client ran, on which key, when it was
//! invoked and when it returned (by one clock shared by all clients), and what it returned.
//! An operation whose outcome is unknown (an error or a timeout: it may or may not have taken
//! effect) has no return time: it may take effect at any moment after its invocation, or
//! never.

use std::time::Duration;

/// What a client asked of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A linearizable Range of the key.
    Get,
    Put {
        value: String,
    },
    Delete,
    /// A txn: if the key's value is `expect`, put `value` (compare-and-swap on the value).
    SwapIfValue {
        expect: String,
        value: String,
    },
    /// A txn: if the key's mod_revision is `expect` (0: the key does not exist), put `value`,
    /// as Kubernetes' GuaranteedUpdate does.
    SwapIfRevision {
        expect: i64,
        value: String,
    },
}

impl Op {
    /// Whether the operation can change the key (so that an unknown outcome matters).
    pub fn writes(&self) -> bool {
        !matches!(self, Op::Get)
    }
}

/// What the operation returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The key's value and mod_revision (absent: None and 0).
    Read {
        value: Option<String>,
        mod_revision: i64,
    },
    /// A put: the revision it made.
    Written { revision: i64 },
    /// A delete: whether it deleted the key.
    Deleted { deleted: bool },
    /// A txn: whether its compare held, and the revision it made (or read, if not).
    Swapped { succeeded: bool, revision: i64 },
    /// An error or a timeout: it may or may not have taken effect.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub client: usize,
    pub key: String,
    pub op: Op,
    pub outcome: Outcome,
    pub invoked: Duration,
    /// None for an unknown outcome: it may take effect at any later time.
    pub returned: Option<Duration>,
}

impl Operation {
    /// One line: who, when, what and what came back.
    pub fn describe(&self) -> String {
        let returned = self
            .returned
            .map_or_else(|| "?".to_string(), |r| format!("{r:?}"));
        format!(
            "client {} [{:?} .. {returned}] {:?} -> {:?}",
            self.client, self.invoked, self.op, self.outcome
        )
    }
}

/// A history, per key (P-compositionality: a history is linearizable if and only if each
/// key's part is, since operations on different keys do not interact).
pub fn by_key(history: &[Operation]) -> std::collections::BTreeMap<&str, Vec<&Operation>> {
    let mut keys: std::collections::BTreeMap<&str, Vec<&Operation>> = Default::default();
    for operation in history {
        keys.entry(operation.key.as_str())
            .or_default()
            .push(operation);
    }
    keys
}
