//! A linearizability checker for one key's history, by the Wing-Gong-Lowe algorithm: walk
//! the invocations and returns in time order, linearize an operation whose invocation comes
//! next if the model allows its outcome, back out when a return is met before its operation
//! was linearized, and remember every (set of linearized operations, state) already explored
//! so that no configuration is explored twice. Keys are checked one by one
//! (P-compositionality).
//!
//! The model is one etcd key: its value and its mod_revision. An operation with an unknown
//! outcome may have taken effect or not, and what it would have seen is unknown too, so the
//! model's state is a set of possible states (as porcupine does with nondeterministic models).

use std::collections::{BTreeSet, HashSet};

use super::history::{Op, Operation, Outcome};

/// One possible state of the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    value: Option<String>,
    /// None when an unknown write may have set it to a revision nobody saw.
    mod_revision: Option<i64>,
}

const ABSENT: Key = Key {
    value: None,
    mod_revision: Some(0),
};

/// The states `key` may be in after `op` returned `outcome` (none: the outcome is impossible
/// from `key`).
fn step(key: &Key, op: &Op, outcome: &Outcome) -> Vec<Key> {
    // A write that made `revision`: revisions of one key only grow.
    let written = |value: &str, revision: i64| -> Vec<Key> {
        if key.mod_revision.is_some_and(|r| revision <= r) {
            return Vec::new();
        }
        vec![Key {
            value: Some(value.to_string()),
            mod_revision: Some(revision),
        }]
    };
    let unknown_write = |value: &str| Key {
        value: Some(value.to_string()),
        mod_revision: None,
    };
    match (op, outcome) {
        (
            Op::Get,
            Outcome::Read {
                value,
                mod_revision,
            },
        ) => {
            let agrees = *value == key.value && key.mod_revision.is_none_or(|r| r == *mod_revision);
            if agrees {
                vec![Key {
                    value: value.clone(),
                    mod_revision: Some(*mod_revision),
                }]
            } else {
                Vec::new()
            }
        }
        (Op::Put { value }, Outcome::Written { revision }) => written(value, *revision),
        (Op::Put { value }, Outcome::Unknown) => vec![unknown_write(value)],
        (Op::Delete, Outcome::Deleted { deleted }) => {
            if *deleted == key.value.is_some() {
                vec![ABSENT]
            } else {
                Vec::new()
            }
        }
        (Op::Delete, Outcome::Unknown) => vec![ABSENT],
        (op @ (Op::SwapIfValue { value, .. } | Op::SwapIfRevision { value, .. }), outcome) => {
            // Whether the compare holds: unknown when the revision it compares is unknown.
            let holds: Option<bool> = match op {
                Op::SwapIfValue { expect, .. } => Some(key.value.as_deref() == Some(expect)),
                Op::SwapIfRevision { expect, .. } => key.mod_revision.map(|r| r == *expect),
                _ => None,
            };
            let can = |held: bool| holds.is_none_or(|h| h == held);
            match outcome {
                Outcome::Swapped {
                    succeeded: true,
                    revision,
                } if can(true) => written(value, *revision),
                Outcome::Swapped {
                    succeeded: false, ..
                } if can(false) => vec![key.clone()],
                Outcome::Unknown => {
                    let mut next = Vec::new();
                    if can(true) {
                        next.push(unknown_write(value));
                    }
                    if can(false) {
                        next.push(key.clone());
                    }
                    next
                }
                _ => Vec::new(),
            }
        }
        // A read with an unknown outcome took no effect; the history leaves reads that
        // failed out, so this is only for completeness.
        (Op::Get, Outcome::Unknown) => vec![key.clone()],
        _ => Vec::new(),
    }
}

/// The set of states after `op` returned `outcome` from any of `states`.
fn step_all(states: &BTreeSet<Key>, op: &Op, outcome: &Outcome) -> BTreeSet<Key> {
    states.iter().flat_map(|k| step(k, op, outcome)).collect()
}

/// A node of the time-ordered list of invocations and returns.
#[derive(Clone, Copy)]
struct Node {
    /// The operation it belongs to.
    op: usize,
    /// Its invocation (else its return).
    call: bool,
    /// For an invocation, the node of its return.
    matching: usize,
    prev: usize,
    next: usize,
}

/// The list, with node 0 as the head sentinel and `NIL` ending it.
struct Timeline {
    nodes: Vec<Node>,
}

const NIL: usize = usize::MAX;

impl Timeline {
    fn new(ops: &[&Operation]) -> Self {
        // (time, returns after invocations at the same time, op, call). An unknown outcome
        // returns after everything else.
        let mut events: Vec<(u128, u8, usize, bool)> = Vec::with_capacity(ops.len() * 2);
        for (i, o) in ops.iter().enumerate() {
            events.push((o.invoked.as_nanos(), 0, i, true));
            let returned = o.returned.map_or(u128::MAX, |r| r.as_nanos());
            events.push((returned, 1, i, false));
        }
        events.sort();
        let mut nodes = vec![Node {
            op: NIL,
            call: false,
            matching: NIL,
            prev: NIL,
            next: NIL,
        }];
        let mut return_of = vec![NIL; ops.len()];
        for (_, _, op, call) in &events {
            let at = nodes.len();
            nodes.push(Node {
                op: *op,
                call: *call,
                matching: NIL,
                prev: at - 1,
                next: NIL,
            });
            nodes[at - 1].next = at;
            if !call {
                return_of[*op] = at;
            }
        }
        for node in nodes.iter_mut().skip(1) {
            if node.call {
                node.matching = return_of[node.op];
            }
        }
        Self { nodes }
    }

    fn first(&self) -> usize {
        self.nodes[0].next
    }

    fn unlink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = n;
        if next != NIL {
            self.nodes[next].prev = n;
        }
    }

    /// Takes an invocation and its return out of the list.
    fn lift(&mut self, call: usize) {
        let ret = self.nodes[call].matching;
        self.unlink(call);
        self.unlink(ret);
    }

    /// Puts them back, in the reverse order of `lift`.
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].matching;
        self.relink(ret);
        self.relink(call);
    }
}

/// How far a check may search before it gives up: a history this hard says more about the
/// workload (too many operations with unknown outcomes at once) than about the server.
const MAX_STEPS: u64 = 50_000_000;

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order fits; the operations linearized at the deepest point the search reached.
    Violation {
        deepest: Vec<usize>,
    },
    /// The search gave up after `MAX_STEPS`.
    TooHard,
}

/// Whether one key's history (every operation on it, in any order) is linearizable.
pub fn check(ops: &[&Operation]) -> Verdict {
    let mut timeline = Timeline::new(ops);
    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, BTreeSet<Key>)> = HashSet::new();
    let mut states: BTreeSet<Key> = BTreeSet::from([ABSENT]);
    // The invocations linearized so far, with the states before each.
    let mut calls: Vec<(usize, BTreeSet<Key>)> = Vec::new();
    let mut deepest: Vec<usize> = Vec::new();
    let mut entry = timeline.first();
    let mut steps = 0u64;
    loop {
        steps += 1;
        if steps > MAX_STEPS {
            return Verdict::TooHard;
        }
        if timeline.first() == NIL {
            return Verdict::Linearizable;
        }
        let node = timeline.nodes[entry];
        if node.call {
            let o = ops[node.op];
            let next = step_all(&states, &o.op, &o.outcome);
            if !next.is_empty() {
                let mut with = linearized.clone();
                with[node.op / 64] |= 1 << (node.op % 64);
                if seen.insert((with.clone(), next.clone())) {
                    calls.push((entry, std::mem::replace(&mut states, next)));
                    linearized = with;
                    timeline.lift(entry);
                    if calls.len() > deepest.len() {
                        deepest = calls.iter().map(|(n, _)| timeline.nodes[*n].op).collect();
                    }
                    entry = timeline.first();
                    continue;
                }
            }
            entry = node.next;
        } else {
            // A return met before its operation was linearized: back out the last choice.
            let Some((call, before)) = calls.pop() else {
                return Verdict::Violation { deepest };
            };
            let op = timeline.nodes[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            states = before;
            timeline.unlift(call);
            entry = timeline.nodes[call].next;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checker's self-test: histories with an injected stale read, lost write and
    //! duplicated write must be caught; correct ones, concurrent and with unknown outcomes,
    //! must pass.

    use std::time::Duration;

    use super::*;

    fn op(client: usize, op: Op, outcome: Outcome, from_ms: u64, to_ms: Option<u64>) -> Operation {
        Operation {
            client,
            key: "k".to_string(),
            op,
            outcome,
            invoked: Duration::from_millis(from_ms),
            returned: to_ms.map(Duration::from_millis),
        }
    }

    fn put(v: &str, rev: i64, from: u64, to: u64) -> Operation {
        op(
            0,
            Op::Put {
                value: v.to_string(),
            },
            Outcome::Written { revision: rev },
            from,
            Some(to),
        )
    }

    fn get(v: Option<&str>, rev: i64, from: u64, to: u64) -> Operation {
        op(
            1,
            Op::Get,
            Outcome::Read {
                value: v.map(str::to_string),
                mod_revision: rev,
            },
            from,
            Some(to),
        )
    }

    fn verdict(history: &[Operation]) -> Verdict {
        check(&history.iter().collect::<Vec<_>>())
    }

    fn violated(history: &[Operation]) -> bool {
        matches!(verdict(history), Verdict::Violation { .. })
    }

    #[test]
    fn sequential_and_overlapping_histories_pass() {
        let sequential = [
            get(None, 0, 0, 1),
            put("a", 2, 2, 3),
            get(Some("a"), 2, 4, 5),
        ];
        assert_eq!(verdict(&sequential), Verdict::Linearizable);
        // A read overlapping a put may see either side of it.
        for seen in [(None, 0), (Some("a"), 2)] {
            let overlapping = [put("a", 2, 0, 10), get(seen.0, seen.1, 1, 5)];
            assert_eq!(verdict(&overlapping), Verdict::Linearizable);
        }
    }

    #[test]
    fn a_stale_read_is_caught() {
        let stale = [
            put("a", 2, 0, 1),
            put("b", 3, 2, 3),
            get(Some("a"), 2, 4, 5),
        ];
        assert!(violated(&stale));
    }

    #[test]
    fn a_lost_write_is_caught() {
        // "b" was acknowledged, then a later read finds the key as before it.
        let lost = [
            put("a", 2, 0, 1),
            put("b", 3, 2, 3),
            get(Some("a"), 2, 10, 11),
        ];
        assert!(violated(&lost));
        let vanished = [put("a", 2, 0, 1), get(None, 0, 5, 6)];
        assert!(violated(&vanished));
    }

    #[test]
    fn a_duplicated_write_is_caught() {
        // "a" applied a second time after "b": it comes back with a new revision.
        let duplicated = [
            put("a", 2, 0, 1),
            put("b", 3, 2, 3),
            get(Some("a"), 4, 4, 5),
        ];
        assert!(violated(&duplicated));
    }

    #[test]
    fn a_write_of_unknown_outcome_may_or_may_not_have_happened() {
        let maybe = |seen: Option<(&str, i64)>| {
            [
                put("a", 2, 0, 1),
                op(
                    0,
                    Op::Put {
                        value: "b".to_string(),
                    },
                    Outcome::Unknown,
                    2,
                    None,
                ),
                get(seen.map(|s| s.0), seen.map_or(0, |s| s.1), 5, 6),
                get(Some("a"), 2, 7, 8),
            ]
        };
        // Not applied (yet): both reads see "a".
        assert_eq!(verdict(&maybe(Some(("a", 2)))), Verdict::Linearizable);
        // Applied at revision 3: the first read sees it, so the second cannot see "a" again.
        assert!(violated(&maybe(Some(("b", 3)))));
    }

    #[test]
    fn two_swaps_from_one_value_cannot_both_succeed() {
        let swap = |client, to: &str, succeeded, revision, from, until| {
            op(
                client,
                Op::SwapIfValue {
                    expect: "a".to_string(),
                    value: to.to_string(),
                },
                Outcome::Swapped {
                    succeeded,
                    revision,
                },
                from,
                Some(until),
            )
        };
        let both = [
            put("a", 2, 0, 1),
            swap(1, "b", true, 3, 2, 6),
            swap(2, "c", true, 4, 3, 7),
        ];
        assert!(violated(&both));
        let one = [
            put("a", 2, 0, 1),
            swap(1, "b", true, 3, 2, 6),
            swap(2, "c", false, 3, 3, 7),
        ];
        assert_eq!(verdict(&one), Verdict::Linearizable);
        // On the mod_revision, as Kubernetes does: the revision it compares must be current.
        let guaranteed = |expect| {
            [
                put("a", 2, 0, 1),
                op(
                    1,
                    Op::SwapIfRevision {
                        expect,
                        value: "b".to_string(),
                    },
                    Outcome::Swapped {
                        succeeded: true,
                        revision: 3,
                    },
                    2,
                    Some(3),
                ),
            ]
        };
        assert_eq!(verdict(&guaranteed(2)), Verdict::Linearizable);
        assert!(violated(&guaranteed(1)));
    }

    #[test]
    fn a_delete_must_find_what_was_there() {
        let deletes = |deleted| {
            [
                put("a", 2, 0, 1),
                op(0, Op::Delete, Outcome::Deleted { deleted }, 2, Some(3)),
                get(None, 0, 4, 5),
            ]
        };
        assert_eq!(verdict(&deletes(true)), Verdict::Linearizable);
        assert!(violated(&deletes(false)));
    }
}
