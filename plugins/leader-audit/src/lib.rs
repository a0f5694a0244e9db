//! The leader-audit election hook: appends a line of JSON to an audit key each time a member
//! becomes leader or a named election changes hands, and names a preferred leader.
//!
//! Config (every field optional, defaults shown; `prefer` absent: no preference):
//! `{"key": "/audit/leaders", "prefer": "n2", "max_lines": 1000}`
//! Lines: `{"term":T,"leader":"n1","id":1,"time_ms":..}` and
//! `{"election":"jobs","leader":"n3"|null,"time_ms":..}`. The key keeps its last `max_lines`
//! lines, so it never grows past the store's request limit.

use conclave_plugin_sdk::{ElectionHook, KeyValue, Member, Output, host, json, log};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    key: String,
    prefer: Option<String>,
    max_lines: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key: "/audit/leaders".into(),
            prefer: None,
            // ~100 bytes a line: 100 KB at most, far below etcd's 1.5 MiB request limit.
            max_lines: 1000,
        }
    }
}

pub struct LeaderAudit {
    key: Vec<u8>,
    prefer: Option<String>,
    max_lines: usize,
}

impl LeaderAudit {
    /// The put that appends `line` to the audit key as the store holds it now.
    fn append(&self, line: &str) -> Output {
        let log = host::get(&self.key, 0)
            .map(|kv| kv.value)
            .unwrap_or_default();
        Output::put(self.key.clone(), append_line(log, line, self.max_lines))
    }
}

/// `log` with `line` and a newline appended, keeping only its last `max_lines` lines.
fn append_line(mut log: Vec<u8>, line: &str, max_lines: usize) -> Vec<u8> {
    // A log that lost its last newline (written by hand) still gets whole lines after it.
    if log.last().is_some_and(|b| *b != b'\n') {
        log.push(b'\n');
    }
    log.extend_from_slice(line.as_bytes());
    log.push(b'\n');
    let lines = log.iter().filter(|b| **b == b'\n').count();
    if lines > max_lines {
        // Cut just after the (lines - max_lines)th newline.
        let cut = log
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(lines - max_lines - 1)
            .map_or(0, |(i, _)| i + 1);
        log.drain(..cut);
    }
    log
}

impl ElectionHook for LeaderAudit {
    fn init(config: &str) -> Result<Self, String> {
        let c: Config =
            serde_json::from_str(config).map_err(|e| format!("leader-audit: bad config: {e}"))?;
        if c.key.is_empty() {
            return Err("leader-audit: key must not be empty".into());
        }
        if c.max_lines == 0 {
            return Err("leader-audit: max_lines must be at least 1".into());
        }
        Ok(LeaderAudit {
            key: c.key.into_bytes(),
            prefer: c.prefer,
            max_lines: c.max_lines,
        })
    }

    fn elected(&mut self, term: u64, leader: &Member, _members: &[Member]) -> Vec<Output> {
        let line = format!(
            r#"{{"term":{term},"leader":{},"id":{},"time_ms":{}}}"#,
            json::string(&leader.name),
            leader.id,
            host::now_ms()
        );
        vec![self.append(&line)]
    }

    fn lost(&mut self, term: u64) {
        log::info(format!(
            "leader-audit: no longer the leader after term {term}"
        ));
    }

    fn election_changed(&mut self, name: &[u8], leader: Option<KeyValue>) -> Vec<Output> {
        let leader = match &leader {
            Some(kv) => json::string(&String::from_utf8_lossy(&kv.value)),
            None => "null".to_string(),
        };
        let line = format!(
            r#"{{"election":{},"leader":{leader},"time_ms":{}}}"#,
            json::string(&String::from_utf8_lossy(name)),
            host::now_ms()
        );
        vec![self.append(&line)]
    }

    fn preferred_leader(&mut self, members: &[Member]) -> Option<u64> {
        let prefer = self.prefer.as_deref()?;
        members
            .iter()
            .find(|m| m.name == prefer && !m.is_learner && m.caught_up)
            .map(|m| m.id)
    }
}

conclave_plugin_sdk::export_election_hook!(LeaderAudit);

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, is_learner: bool, caught_up: bool) -> Member {
        Member {
            id,
            name: name.into(),
            is_learner,
            matched_index: Some(10),
            caught_up,
        }
    }

    fn value(output: &Output) -> String {
        match output {
            Output::Put(p) => String::from_utf8_lossy(&p.value).into_owned(),
            Output::Delete(_) => panic!("a delete"),
        }
    }

    #[test]
    fn config() {
        assert!(LeaderAudit::init("{}").unwrap().prefer.is_none());
        assert_eq!(LeaderAudit::init("{}").unwrap().key, b"/audit/leaders");
        for (config, want) in [
            (r#"{"key": ""}"#, "key must not be empty"),
            (r#"{"max_lines": 0}"#, "max_lines"),
            (r#"{"prefer": 2}"#, "bad config"),
            (r#"{"perfer": "n2"}"#, "unknown field"),
        ] {
            let err = LeaderAudit::init(config).err().unwrap();
            assert!(err.contains(want), "{config}: {err}");
        }
    }

    #[test]
    fn lines() {
        let mut hook = LeaderAudit::init(r#"{"key": "/a"}"#).unwrap();
        let out = hook.elected(7, &member(2, "n\"2", false, true), &[]);
        let line = value(&out[0]);
        assert!(
            line.starts_with(r#"{"term":7,"leader":"n\"2","id":2,"time_ms":"#),
            "{line}"
        );
        assert!(line.ends_with("}\n"), "{line}");

        let out = hook.election_changed(b"jobs", None);
        assert!(value(&out[0]).starts_with(r#"{"election":"jobs","leader":null,"#));
    }

    #[test]
    fn keeps_the_last_lines() {
        assert_eq!(append_line(Vec::new(), "a", 2), b"a\n");
        assert_eq!(append_line(b"a\n".to_vec(), "b", 2), b"a\nb\n");
        assert_eq!(append_line(b"a\nb\n".to_vec(), "c", 2), b"b\nc\n");
        assert_eq!(append_line(b"a\nb\nc\n".to_vec(), "d", 1), b"d\n");
        assert_eq!(append_line(b"junk".to_vec(), "e", 5), b"junk\ne\n");
    }

    #[test]
    fn preference() {
        let mut hook = LeaderAudit::init(r#"{"prefer": "n2"}"#).unwrap();
        let members = [member(1, "n1", false, true), member(2, "n2", false, true)];
        assert_eq!(hook.preferred_leader(&members), Some(2));
        let lagging = [member(1, "n1", false, true), member(2, "n2", false, false)];
        assert_eq!(hook.preferred_leader(&lagging), None);
        let learner = [member(2, "n2", true, true)];
        assert_eq!(hook.preferred_leader(&learner), None);
        let mut none = LeaderAudit::init("{}").unwrap();
        assert_eq!(none.preferred_leader(&members), None);
    }
}
