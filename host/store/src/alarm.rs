//! Alarms, part of the replicated state as etcd keeps them: which member raised which alarm.
//! While a NOSPACE alarm is up, apply refuses what would grow the store (puts, txns that put,
//! lease grants, plugin deploys and flushes); while a CORRUPT alarm is up, it refuses every
//! write. Every member decides the same, since every member holds the same alarms.
//!
//! On disk, in `meta`: `alarm/<member id u64 BE><alarm type i32 BE>` -> empty.

use std::collections::BTreeSet;

use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, alarm_request::AlarmAction, request_op,
};

use crate::error::{RequestError, Result, StoreError};
use crate::write::BatchWriter;

pub(crate) const META_ALARM_PREFIX: &[u8] = b"alarm/";

/// The alarms in place, as (member ID, alarm type).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Alarms {
    raised: BTreeSet<(u64, i32)>,
}

impl Alarms {
    /// Rebuild helper for start-up: one `alarm/` meta entry read back from disk.
    pub fn restore(&mut self, key: &[u8]) -> Result<()> {
        let parsed = key
            .strip_prefix(META_ALARM_PREFIX)
            .and_then(|k| <[u8; 12]>::try_from(k).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("bad alarm entry {key:?}")))?;
        let (member, alarm) = parsed.split_at(8);
        let member = u64::from_be_bytes(member.try_into().unwrap_or_default());
        let alarm = i32::from_be_bytes(alarm.try_into().unwrap_or_default());
        self.raised.insert((member, alarm));
        Ok(())
    }

    pub fn has(&self, alarm: AlarmType) -> bool {
        self.raised.iter().any(|(_, a)| *a == alarm as i32)
    }

    /// The alarms of type `alarm` (every alarm for NONE), as etcd lists them.
    pub fn list(&self, alarm: AlarmType) -> Vec<AlarmMember> {
        self.raised
            .iter()
            .filter(|(_, a)| alarm == AlarmType::None || *a == alarm as i32)
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// The error `request` gets while the alarms in place stand, if any.
    pub fn refuses(&self, request: &Request) -> Option<RequestError> {
        if self.raised.is_empty() {
            return None;
        }
        if self.has(AlarmType::Corrupt) && !matches!(request, Request::Alarm(_)) {
            return Some(RequestError::Corrupt);
        }
        (self.has(AlarmType::Nospace) && grows(request)).then_some(RequestError::NoSpace)
    }
}

/// Whether a write can make the store larger: what etcd's capped applier refuses.
pub fn grows(request: &Request) -> bool {
    match request {
        Request::Put(_)
        | Request::LeaseGrant(_)
        | Request::PluginDeploy(_)
        | Request::PluginFlush(_) => true,
        Request::Txn(t) => txn_puts(t),
        _ => false,
    }
}

fn txn_puts(t: &conclave_proto::etcdserverpb::TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(request_op::Request::RequestPut(_)) => true,
            Some(request_op::Request::RequestTxn(inner)) => txn_puts(inner),
            _ => false,
        })
}

fn alarm_key(member: u64, alarm: i32) -> Vec<u8> {
    let mut key = META_ALARM_PREFIX.to_vec();
    key.extend_from_slice(&member.to_be_bytes());
    key.extend_from_slice(&alarm.to_be_bytes());
    key
}

impl BatchWriter<'_> {
    /// Raises, clears or lists alarms. Activating one already raised, or clearing one not
    /// raised, changes nothing and answers no alarm, as etcd's alarm store does.
    pub(crate) fn alarm(&mut self, r: &AlarmRequest) -> Result<AlarmResponse> {
        let alarm = AlarmType::try_from(r.alarm).unwrap_or(AlarmType::None);
        let pair = (r.member_id, alarm as i32);
        let member = AlarmMember {
            member_id: pair.0,
            alarm: pair.1,
        };
        let changed = match AlarmAction::try_from(r.action) {
            Ok(AlarmAction::Activate)
                if alarm != AlarmType::None && self.state.alarms.raised.insert(pair) =>
            {
                self.batch
                    .insert(&self.backend.meta, alarm_key(pair.0, pair.1), []);
                vec![member]
            }
            Ok(AlarmAction::Deactivate) if self.state.alarms.raised.remove(&pair) => {
                self.batch
                    .remove(&self.backend.meta, alarm_key(pair.0, pair.1));
                vec![member]
            }
            Ok(AlarmAction::Get) => self.state.alarms.list(alarm),
            _ => Vec::new(),
        };
        Ok(AlarmResponse {
            header: None,
            alarms: changed,
        })
    }
}
