//! The workload: clients, each connected to one member, run a mix of operations on a few keys
//! until a deadline (gets, serializable gets, puts, txns putting two keys at once, deletes,
//! compare-and-swap txns on the value and on the mod_revision as Kubernetes' GuaranteedUpdate,
//! Kubernetes' lists: the prefix in pages of two with limit and continue, every page at the
//! first page's revision, and its count-only ranges; and lease sessions, see `leases`),
//! recording each in the history with its invocation and return times. A write that fails or
//! times out is recorded with an unknown outcome; a read that fails is left out (it changed
//! nothing).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use tokio::time::Instant;

use super::history::{Op, Operation, Outcome};

/// How long one operation may take before its outcome is unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Between two operations of a client: bounds the history to what the checker reads fast.
const PAUSE: Duration = Duration::from_millis(5);
/// After a failure (its member down or cut off): each failed write is an operation of unknown
/// outcome, which may take effect at any later time, and many at once make the checker's
/// search grow fast.
const BACK_OFF: Duration = Duration::from_millis(500);

/// A serializable read: which client, on which of its connections, and the revision its
/// member answered at.
#[derive(Debug, Clone, Copy)]
pub struct SerializableRead {
    pub client: usize,
    /// How many of the client's requests had failed before: after a failure the client may
    /// have reconnected (to a restarted member that lost the tail of its lazily written state
    /// and replays it from its log), and monotonic reads are promised per connection, as etcd
    /// promises them.
    pub connection: u64,
    pub revision: i64,
}

/// A list of the prefix in pages, every page at one revision.
#[derive(Debug, Clone)]
pub struct List {
    pub client: usize,
    pub revision: i64,
    /// The count the first page gave (every key under the prefix at the revision).
    pub count: i64,
    /// A count-only range (Kubernetes counts a resource's objects so): no keys read.
    pub count_only: bool,
    /// Every page's keys, values and mod_revisions, in order.
    pub kvs: Vec<(String, String, i64)>,
}

/// What every client records.
#[derive(Default)]
pub struct Recorded {
    pub history: Mutex<Vec<Operation>>,
    pub serializable: Mutex<Vec<SerializableRead>>,
    pub lists: Mutex<Vec<List>>,
    pub sessions: super::leases::Sessions,
}

/// The keys every client works on.
pub const PREFIX: &str = "/robustness/";
/// Keys per page of a list.
const PAGE: i64 = 2;

/// A small xorshift: the mix and the fault schedules need no more than a fair spread, and the
/// same seed gives the same choices.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        // Never zero: xorshift stays at zero forever.
        Dice(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

pub fn key(k: u64) -> String {
    format!("{PREFIX}{k}")
}

/// Client `id` on `client` until `until`, keys `0..keys`, its choices drawn from `seed`;
/// times from `start`.
pub async fn run(
    id: usize,
    seed: u64,
    mut client: Client,
    keys: u64,
    start: Instant,
    until: Instant,
    recorded: Arc<Recorded>,
) {
    let mut dice = Dice::new(seed ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // What this client last read of each key, for its swaps to expect.
    let mut last_read: Vec<(Option<String>, i64)> = vec![(None, 0); keys as usize];
    let mut seq = 0u64;
    let mut session = None;
    // Failed requests so far: a new connection may follow each (see SerializableRead).
    let mut failures = 0u64;
    while Instant::now() < until {
        let k = dice.below(keys);
        let key = key(k);
        seq += 1;
        let value = format!("c{id}-{seq}");
        let (known_value, known_revision) = last_read[k as usize].clone();
        let op = match dice.below(100) {
            0..35 => Op::Get,
            35..45 => {
                if !serializable_get(id, failures, &mut client, &key, &recorded).await {
                    failures += 1;
                    tokio::time::sleep(BACK_OFF).await;
                }
                tokio::time::sleep(PAUSE).await;
                continue;
            }
            45..64 => Op::Put { value },
            64..70 => {
                let other = key_other_than(k, keys, &mut dice);
                if !put_two(id, &mut client, [&key, &other], &value, start, &recorded).await {
                    failures += 1;
                    tokio::time::sleep(BACK_OFF).await;
                }
                tokio::time::sleep(PAUSE).await;
                continue;
            }
            70..75 => Op::Delete,
            75..86 => match known_value {
                Some(expect) => Op::SwapIfValue { expect, value },
                None => Op::Get,
            },
            86..90 => {
                let count_only = dice.below(3) == 0;
                let listed =
                    tokio::time::timeout(OP_TIMEOUT, list(&mut client, id, count_only)).await;
                match listed {
                    Ok(Ok(list)) => recorded.lists.lock().unwrap().push(list),
                    _ => {
                        failures += 1;
                        tokio::time::sleep(BACK_OFF).await;
                    }
                }
                tokio::time::sleep(PAUSE).await;
                continue;
            }
            90..94 => {
                let choice = dice.below(100);
                super::leases::step(
                    &mut client,
                    id,
                    seq,
                    choice,
                    &mut session,
                    start,
                    &recorded.sessions,
                )
                .await;
                tokio::time::sleep(PAUSE).await;
                continue;
            }
            _ => Op::SwapIfRevision {
                expect: known_revision,
                value,
            },
        };
        let invoked = start.elapsed();
        let outcome = tokio::time::timeout(OP_TIMEOUT, perform(&mut client, &key, &op))
            .await
            .ok()
            .and_then(Result::ok);
        let returned = start.elapsed();
        match outcome {
            Some(outcome) => {
                if let Outcome::Read {
                    value,
                    mod_revision,
                } = &outcome
                {
                    last_read[k as usize] = (value.clone(), *mod_revision);
                }
                record(&recorded, id, key, op, outcome, invoked, Some(returned));
            }
            // A failed write may have taken effect; a failed read took none.
            None => {
                failures += 1;
                if op.writes() {
                    record(&recorded, id, key, op, Outcome::Unknown, invoked, None);
                }
                tokio::time::sleep(BACK_OFF).await;
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
}

fn record(
    recorded: &Recorded,
    client: usize,
    key: String,
    op: Op,
    outcome: Outcome,
    invoked: Duration,
    returned: Option<Duration>,
) {
    recorded.history.lock().unwrap().push(Operation {
        client,
        key,
        op,
        outcome,
        invoked,
        returned,
    });
}

/// One of the keys, not `k`.
fn key_other_than(k: u64, keys: u64, dice: &mut Dice) -> String {
    key((k + 1 + dice.below(keys - 1)) % keys)
}

/// A txn putting `value` to both `keys` at one revision (so that watchers must deliver both
/// events in one response: etcd's "atomic"), recorded as a put of each key, which is what it
/// is to each key alone. Whether it was answered.
async fn put_two(
    id: usize,
    client: &mut Client,
    keys: [&str; 2],
    value: &str,
    start: Instant,
    recorded: &Recorded,
) -> bool {
    let txn = Txn::new().and_then(keys.map(|key| TxnOp::put(key, value, None)));
    let invoked = start.elapsed();
    let answer = tokio::time::timeout(OP_TIMEOUT, client.txn(txn))
        .await
        .ok()
        .and_then(Result::ok);
    let returned = answer.as_ref().map(|_| start.elapsed());
    let outcome = match &answer {
        Some(resp) => Outcome::Written {
            revision: resp.header().map_or(0, |h| h.revision()),
        },
        None => Outcome::Unknown,
    };
    for key in keys {
        let op = Op::Put {
            value: value.to_string(),
        };
        record(
            recorded,
            id,
            key.to_string(),
            op,
            outcome.clone(),
            invoked,
            returned,
        );
    }
    answer.is_some()
}

/// A linearizable read of `key` as the last word on it, recorded like any other.
pub async fn final_read(
    id: usize,
    client: &mut Client,
    key: &str,
    start: Instant,
    recorded: &Recorded,
) -> Result<(), etcd_client::Error> {
    let invoked = start.elapsed();
    let outcome = perform(client, key, &Op::Get).await?;
    let returned = start.elapsed();
    record(
        recorded,
        id,
        key.to_string(),
        Op::Get,
        outcome,
        invoked,
        Some(returned),
    );
    Ok(())
}

/// The prefix in pages of [`PAGE`] keys: the first page at the newest revision, each next one
/// continuing after the last key at that same revision, as Kubernetes lists; or, `count_only`,
/// only how many keys it holds.
async fn list(
    client: &mut Client,
    id: usize,
    count_only: bool,
) -> Result<List, etcd_client::Error> {
    let end = etcd_client::GetOptions::new().with_prefix();
    let first_page = match count_only {
        true => end.with_count_only(),
        false => end.with_limit(PAGE),
    };
    let first = client.get(PREFIX, Some(first_page)).await?;
    let revision = first.header().map_or(0, |h| h.revision());
    let mut list = List {
        client: id,
        revision,
        count: first.count(),
        count_only,
        kvs: Vec::new(),
    };
    let mut page = first;
    loop {
        list.kvs.extend(page.kvs().iter().map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
                kv.mod_revision(),
            )
        }));
        let Some(last) = page.kvs().last().filter(|_| page.more()) else {
            return Ok(list);
        };
        let mut after = last.key().to_vec();
        after.push(0);
        let options = etcd_client::GetOptions::new()
            .with_range(prefix_end(PREFIX))
            .with_limit(PAGE)
            .with_revision(revision);
        page = client.get(after, Some(options)).await?;
    }
}

/// The end of the range of every key under `prefix` (its last byte plus one).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Whether the read was answered.
async fn serializable_get(
    id: usize,
    connection: u64,
    client: &mut Client,
    key: &str,
    recorded: &Recorded,
) -> bool {
    let read = tokio::time::timeout(
        OP_TIMEOUT,
        client.get(key, Some(GetOptions::new().with_serializable())),
    )
    .await;
    if let Ok(Ok(resp)) = read
        && let Some(header) = resp.header()
    {
        recorded
            .serializable
            .lock()
            .unwrap()
            .push(SerializableRead {
                client: id,
                connection,
                revision: header.revision(),
            });
        return true;
    }
    false
}

async fn perform(client: &mut Client, key: &str, op: &Op) -> Result<Outcome, etcd_client::Error> {
    let revision =
        |header: Option<&etcd_client::ResponseHeader>| header.map_or(0, |h| h.revision());
    Ok(match op {
        Op::Get => {
            let resp = client.get(key, None).await?;
            match resp.kvs().first() {
                Some(kv) => Outcome::Read {
                    value: Some(String::from_utf8_lossy(kv.value()).into_owned()),
                    mod_revision: kv.mod_revision(),
                },
                None => Outcome::Read {
                    value: None,
                    mod_revision: 0,
                },
            }
        }
        Op::Put { value } => {
            let resp = client.put(key, value.as_str(), None).await?;
            Outcome::Written {
                revision: revision(resp.header()),
            }
        }
        Op::Delete => {
            let resp = client.delete(key, None).await?;
            Outcome::Deleted {
                deleted: resp.deleted() > 0,
            }
        }
        Op::SwapIfValue { expect, value } => {
            let compare = Compare::value(key, CompareOp::Equal, expect.as_str());
            swap(client, key, compare, value).await?
        }
        Op::SwapIfRevision { expect, value } => {
            let compare = Compare::mod_revision(key, CompareOp::Equal, *expect);
            swap(client, key, compare, value).await?
        }
    })
}

async fn swap(
    client: &mut Client,
    key: &str,
    compare: Compare,
    value: &str,
) -> Result<Outcome, etcd_client::Error> {
    let txn = Txn::new()
        .when([compare])
        .and_then([TxnOp::put(key, value, None)]);
    let resp = client.txn(txn).await?;
    Ok(Outcome::Swapped {
        succeeded: resp.succeeded(),
        revision: resp.header().map_or(0, |h| h.revision()),
    })
}
