//! One election hook on the leader, on a thread of its own: told `elected` once per term and
//! version, `election-changed` whenever a named election of the Election API gets a new leader
//! (read from history, so no change is missed between two looks), `lost` when this member
//! stops leading; and asked every few seconds which member should lead, which conclave honours
//! by a leader transfer to that member if it is a caught-up voter. What the hook returns is
//! proposed through Raft as one transaction (after the leases its TTLs need).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use conclave_plugin::{HookInstance, KeyValue, Member, Output, World};
use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{LeaseGrantResponse, TxnRequest};
use conclave_proto::mvccpb::{self, event::EventType};
use conclave_store::{RequestError, Response, StoreError};

use super::StoreReads;
use super::error::RunError;
use super::leader::{Current, OnLeader};
use super::outputs::output_ops;
use super::reads::to_plugin;
use super::thread::{Exit, IDLE, PluginThread};
use crate::recipe::{first_by_create, prefix};

/// Events read from history per step.
const HISTORY_STEP: usize = 1000;
/// How often the hook is asked who should lead.
const PREFERENCE_INTERVAL: Duration = Duration::from_secs(2);
/// A member whose log is within this many entries of the leader's counts as caught up: a
/// leader transfer to it finishes at once.
const CAUGHT_UP_SLACK: u64 = 16;

pub struct Hook {
    pub ctx: OnLeader,
}

impl Hook {
    pub fn spawn(self) -> std::io::Result<PluginThread> {
        // The version told `elected` in this term: a restart after a failure does not tell
        // it again (it would, say, audit the same election twice); a new version is told.
        let mut told: Option<u64> = None;
        PluginThread::spawn(
            self.ctx.name.clone(),
            self.ctx.plugins.clone(),
            move |stop| self.run_once(stop, &mut told),
        )
    }

    fn run_once(&self, stop: &AtomicBool, told: &mut Option<u64>) -> Result<Exit, RunError> {
        let store = &self.ctx.plugins.store;
        let Some(Current {
            spec,
            compiled,
            limits,
            ..
        }) = self.ctx.current(World::ElectionHook)?
        else {
            return Ok(Exit::Stopped);
        };
        // Elections are followed from here on: what changed before, the hook was not there for.
        let mut cursor = store.current_revision() + 1;
        let started = Instant::now();
        let mut instance = HookInstance::start(
            &self.ctx.plugins.engine,
            &compiled,
            limits,
            &spec.config,
            Arc::new(StoreReads(store.clone())),
            self.ctx.plugins.log_sink(&self.ctx.name),
        )?;
        instance.set_revision(cursor - 1);
        self.ctx
            .plugins
            .statuses
            .call(&self.ctx.name, started.elapsed(), 0, 0);
        self.ctx.plugins.statuses.running(&self.ctx.name);
        self.ctx.plugins.note(
            &self.ctx.name,
            "info",
            format!("running version {} in term {}", spec.version, self.ctx.term),
        );
        if *told != Some(spec.version) {
            let (me, members) = self.members();
            let outputs = self
                .ctx
                .timed(0, || instance.elected(self.ctx.term, &me, &members))?;
            self.propose(outputs)?;
            *told = Some(spec.version);
        }
        let mut news = self.ctx.plugins.news();
        let mut registry_seen = news.borrow().registry_changes;
        let mut next_preference = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                if !self.ctx.leading() {
                    self.ctx.timed(0, || instance.lost(self.ctx.term))?;
                }
                return Ok(Exit::Stopped);
            }
            self.follow_elections(&mut instance, &mut cursor)?;
            if Instant::now() >= next_preference {
                next_preference = Instant::now() + PREFERENCE_INTERVAL;
                let (_, members) = self.members();
                let preferred = self.ctx.timed(0, || instance.preferred_leader(&members))?;
                if let Some(id) = preferred {
                    self.move_leadership(id, &members);
                }
            }
            let registry = news.borrow().registry_changes;
            if registry != registry_seen {
                registry_seen = registry;
                match store.plugin(&self.ctx.name).map_err(RunError::Registry)? {
                    None => return Ok(Exit::Stopped),
                    Some(r) if r.versions.last() != Some(&spec) => return Ok(Exit::Restart),
                    Some(_) => {}
                }
            }
            if news.borrow_and_update().revision < cursor {
                self.ctx.runtime.block_on(async {
                    let _ = tokio::time::timeout(IDLE, news.changed()).await;
                });
            }
        }
    }

    /// Reads history from `cursor`; for each election whose contenders changed, compares its
    /// leader before and after, and tells the hook when it moved.
    fn follow_elections(
        &self,
        instance: &mut HookInstance,
        cursor: &mut i64,
    ) -> Result<(), RunError> {
        let store = &self.ctx.plugins.store;
        let history = match store.history(*cursor, HISTORY_STEP) {
            Ok(h) => h,
            Err(StoreError::Request(RequestError::Compacted)) => {
                *cursor = store.compacted_revision() + 1;
                return Ok(());
            }
            Err(e) => return Err(RunError::History(e)),
        };
        let mut names = BTreeSet::new();
        let mut first = None;
        for event in &history.events {
            let Some(kv) = &event.kv else { continue };
            if let Some(name) = election_of(event, kv) {
                first.get_or_insert(kv.mod_revision);
                names.insert(name.to_vec());
            }
        }
        let last = history.next - 1;
        if let Some(first) = first {
            instance.set_revision(last);
            for name in names {
                let before = self.leader_at(&name, first - 1)?;
                let after = self.leader_at(&name, last)?;
                let same = |a: &KeyValue, b: &KeyValue| {
                    a.key == b.key && a.create_revision == b.create_revision
                };
                let moved = match (&before, &after) {
                    (Some(a), Some(b)) => !same(a, b),
                    (None, None) => false,
                    _ => true,
                };
                if moved {
                    let outputs = self
                        .ctx
                        .timed(1, || instance.election_changed(&name, after.as_ref()))?;
                    self.propose(outputs)?;
                }
            }
        }
        *cursor = history.next;
        Ok(())
    }

    /// The leader of election `name` at `revision`: its first contender by create revision.
    fn leader_at(&self, name: &[u8], revision: i64) -> Result<Option<KeyValue>, RunError> {
        if revision < 1 {
            return Ok(None);
        }
        let mut request = first_by_create(&prefix(name));
        request.revision = revision;
        let resp = self
            .ctx
            .plugins
            .store
            .range(&request)
            .map_err(|error| RunError::Election {
                name: name.to_vec(),
                error,
            })?;
        Ok(resp.kvs.into_iter().next().map(to_plugin))
    }

    /// Every member as this leader sees it, this member first.
    fn members(&self) -> (Member, Vec<Member>) {
        let me = self.ctx.member.cluster.me();
        let membership = self.ctx.member.cluster.membership();
        let progress = self.ctx.member.cluster.progress();
        let last = progress.last_log_index;
        let mut members: Vec<Member> = membership
            .members
            .iter()
            .map(|(id, node)| {
                let matched = if *id == me {
                    Some(last)
                } else {
                    progress.matched(*id)
                };
                Member {
                    id: *id,
                    name: node.name.clone(),
                    is_learner: !membership.voters.contains(id),
                    matched_index: matched,
                    caught_up: matched.is_some_and(|i| i + CAUGHT_UP_SLACK >= last),
                }
            })
            .collect();
        members.sort_by_key(|member| member.id != me);
        let mine = members
            .first()
            .filter(|member| member.id == me)
            .cloned()
            .unwrap_or_else(|| Member {
                id: me,
                name: self.ctx.member.name.clone(),
                is_learner: false,
                matched_index: Some(last),
                caught_up: true,
            });
        (mine, members)
    }

    /// Moves leadership to `id` if it is another caught-up voter; otherwise leaves it.
    fn move_leadership(&self, id: u64, members: &[Member]) {
        if id == self.ctx.member.cluster.me() {
            return;
        }
        let Some(target) = members.iter().find(|m| m.id == id) else {
            self.ctx.plugins.note(
                &self.ctx.name,
                "warn",
                format!("prefers member {id:x}, which is not in the cluster"),
            );
            return;
        };
        if target.is_learner || !target.caught_up {
            return;
        }
        self.ctx.plugins.note(
            &self.ctx.name,
            "info",
            format!(
                "moving leadership to {} ({id:x}), as preferred",
                target.name
            ),
        );
        let cluster = &self.ctx.member.cluster;
        if let Err(e) = self
            .ctx
            .runtime
            .block_on(cluster.ask_to_move_leadership(id))
        {
            self.ctx.plugins.note(
                &self.ctx.name,
                "warn",
                format!("leader transfer failed: {e}"),
            );
        }
    }

    /// Proposes the hook's outputs: the leases their TTLs need, then one transaction.
    fn propose(&self, outputs: Vec<Output>) -> Result<(), RunError> {
        if outputs.is_empty() {
            return Ok(());
        }
        let (leases, ops) = output_ops(outputs, crate::ids::random_lease_id)?;
        for lease in leases {
            LeaseGrantResponse::try_from(self.propose_one(Request::LeaseGrant(lease))?)?;
        }
        self.propose_one(Request::Txn(TxnRequest {
            success: ops,
            ..Default::default()
        }))?;
        Ok(())
    }

    fn propose_one(&self, request: Request) -> Result<Response, RunError> {
        self.ctx
            .propose("outputs", request)?
            .map_err(|error| RunError::Refused {
                what: "outputs",
                error,
            })
    }
}

/// The election a change belongs to, if its key is an Election API contender's:
/// `<name>/<lease ID in hex>`, put under that very lease (a delete carries no lease; its key's
/// shape is enough). Lock keys follow the same recipe, so a lock shows as an election too.
fn election_of<'a>(event: &mvccpb::Event, kv: &'a mvccpb::KeyValue) -> Option<&'a [u8]> {
    let slash = kv.key.iter().rposition(|b| *b == b'/')?;
    let (name, hex) = (&kv.key[..slash], &kv.key[slash + 1..]);
    if name.is_empty() || hex.is_empty() || hex.len() > 16 {
        return None;
    }
    let hex = std::str::from_utf8(hex).ok()?;
    if hex.starts_with('0')
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let lease = i64::from_str_radix(hex, 16).ok()?;
    let deleted = event.r#type == EventType::Delete as i32;
    (deleted || kv.lease == lease).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str, lease: i64, deleted: bool) -> (mvccpb::Event, mvccpb::KeyValue) {
        let kv = mvccpb::KeyValue {
            key: key.as_bytes().to_vec(),
            lease,
            ..Default::default()
        };
        let r#type = if deleted {
            EventType::Delete
        } else {
            EventType::Put
        } as i32;
        (
            mvccpb::Event {
                r#type,
                kv: Some(kv.clone()),
                prev_kv: None,
            },
            kv,
        )
    }

    #[test]
    fn contender_keys_name_their_election() {
        let cases: [(&str, i64, bool, Option<&str>); 8] = [
            (
                "jobs/694d7a1b2c3d4e5f",
                0x694d7a1b2c3d4e5f,
                false,
                Some("jobs"),
            ),
            ("a/b/7f", 0x7f, false, Some("a/b")),
            ("jobs/7f", 0, true, Some("jobs")),
            // Not under its own lease, or not a lease's hex at all.
            ("jobs/7f", 0x80, false, None),
            ("jobs/07f", 0x7f, false, None),
            ("jobs/7F", 0x7f, false, None),
            ("/7f", 0x7f, false, None),
            ("jobs/", 0, true, None),
        ];
        for (key, lease, deleted, want) in cases {
            let (e, kv) = event(key, lease, deleted);
            assert_eq!(
                election_of(&e, &kv).map(|n| std::str::from_utf8(n).unwrap()),
                want,
                "{key}"
            );
        }
    }
}
