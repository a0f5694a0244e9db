//! `-w json` output: the responses as etcdctl 3.4 prints them, i.e. Go's encoding/json applied
//! to etcd 3.4's generated structs: proto field names, zero values omitted, 64-bit integers as
//! numbers, bytes as base64, and a txn's oneof responses as `{"Response":{"ResponsePut":...}}`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use conclave_client::proto::etcdserverpb::{
    DeleteRangeResponse, PutResponse, RangeResponse, ResponseHeader, ResponseOp, StatusResponse,
    TxnResponse, response_op::Response,
};
use conclave_client::proto::mvccpb::KeyValue;

use crate::gofmt::json_string;

/// A JSON object written field by field, in Go's struct field order.
struct Obj(String);

impl Obj {
    fn new() -> Self {
        Obj(String::from("{"))
    }

    fn raw(mut self, key: &str, value: &str) -> Self {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push_str(&json_string(key));
        self.0.push(':');
        self.0.push_str(value);
        self
    }

    /// An integer field with `omitempty`.
    fn int(self, key: &str, value: impl Into<i128>) -> Self {
        let value = value.into();
        if value == 0 {
            self
        } else {
            self.raw(key, &value.to_string())
        }
    }

    /// A bool field with `omitempty`.
    fn flag(self, key: &str, value: bool) -> Self {
        if value { self.raw(key, "true") } else { self }
    }

    /// A string field with `omitempty`.
    fn text(self, key: &str, value: &str) -> Self {
        if value.is_empty() {
            self
        } else {
            self.raw(key, &json_string(value))
        }
    }

    /// A bytes field with `omitempty`.
    fn bytes(self, key: &str, value: &[u8]) -> Self {
        if value.is_empty() {
            self
        } else {
            self.raw(key, &json_string(&BASE64.encode(value)))
        }
    }

    /// A message field with `omitempty` (a nil pointer is left out).
    fn message(self, key: &str, value: Option<String>) -> Self {
        match value {
            Some(v) => self.raw(key, &v),
            None => self,
        }
    }

    /// A repeated field with `omitempty`.
    fn list(self, key: &str, items: Vec<String>) -> Self {
        if items.is_empty() {
            self
        } else {
            self.raw(key, &array(items))
        }
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn array(items: Vec<String>) -> String {
    format!("[{}]", items.join(","))
}

fn header(h: &ResponseHeader) -> String {
    Obj::new()
        .int("cluster_id", h.cluster_id)
        .int("member_id", h.member_id)
        .int("revision", h.revision)
        .int("raft_term", h.raft_term)
        .finish()
}

fn key_value(kv: &KeyValue) -> String {
    Obj::new()
        .bytes("key", &kv.key)
        .int("create_revision", kv.create_revision)
        .int("mod_revision", kv.mod_revision)
        .int("version", kv.version)
        .bytes("value", &kv.value)
        .int("lease", kv.lease)
        .finish()
}

/// A Range response.
pub fn range(r: &RangeResponse) -> String {
    Obj::new()
        .message("header", r.header.as_ref().map(header))
        .list("kvs", r.kvs.iter().map(key_value).collect())
        .flag("more", r.more)
        .int("count", r.count)
        .finish()
}

/// A Put response.
pub fn put(r: &PutResponse) -> String {
    Obj::new()
        .message("header", r.header.as_ref().map(header))
        .message("prev_kv", r.prev_kv.as_ref().map(key_value))
        .finish()
}

/// A DeleteRange response.
pub fn delete(r: &DeleteRangeResponse) -> String {
    Obj::new()
        .message("header", r.header.as_ref().map(header))
        .int("deleted", r.deleted)
        .list("prev_kvs", r.prev_kvs.iter().map(key_value).collect())
        .finish()
}

/// A Txn response.
pub fn txn(r: &TxnResponse) -> String {
    Obj::new()
        .message("header", r.header.as_ref().map(header))
        .flag("succeeded", r.succeeded)
        .list("responses", r.responses.iter().map(response_op).collect())
        .finish()
}

/// Go marshals the oneof as an interface field with no JSON tag: the Go field name, holding the
/// wrapper struct, whose one field is again named the Go way.
fn response_op(op: &ResponseOp) -> String {
    let inner = match &op.response {
        Some(Response::ResponseRange(r)) => Obj::new().raw("ResponseRange", &range(r)).finish(),
        Some(Response::ResponsePut(r)) => Obj::new().raw("ResponsePut", &put(r)).finish(),
        Some(Response::ResponseDeleteRange(r)) => {
            Obj::new().raw("ResponseDeleteRange", &delete(r)).finish()
        }
        Some(Response::ResponseTxn(r)) => Obj::new().raw("ResponseTxn", &txn(r)).finish(),
        None => "null".to_string(),
    };
    Obj::new().raw("Response", &inner).finish()
}

/// A Status response, with the fields etcd 3.4 knows (later additions are not printed).
fn status(r: &StatusResponse) -> String {
    Obj::new()
        .message("header", r.header.as_ref().map(header))
        .text("version", &r.version)
        .int("dbSize", r.db_size)
        .int("leader", r.leader)
        .int("raftIndex", r.raft_index)
        .int("raftTerm", r.raft_term)
        .int("raftAppliedIndex", r.raft_applied_index)
        .list("errors", r.errors.iter().map(|e| json_string(e)).collect())
        .int("dbSizeInUse", r.db_size_in_use)
        .flag("isLearner", r.is_learner)
        .finish()
}

/// `endpoint status`: `[{"Endpoint":...,"Status":{...}}]`.
pub fn endpoint_statuses(list: &[(String, StatusResponse)]) -> String {
    array(
        list.iter()
            .map(|(ep, s)| {
                Obj::new()
                    .raw("Endpoint", &json_string(ep))
                    .raw("Status", &status(s))
                    .finish()
            })
            .collect(),
    )
}

/// One endpoint's health, as etcdctl's epHealth struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub endpoint: String,
    pub healthy: bool,
    pub took: String,
    pub error: String,
}

/// `endpoint health`: `[{"endpoint":...,"health":true,"took":"..."}]`.
pub fn endpoint_health(list: &[Health]) -> String {
    array(
        list.iter()
            .map(|h| {
                Obj::new()
                    .raw("endpoint", &json_string(&h.endpoint))
                    .raw("health", if h.healthy { "true" } else { "false" })
                    .raw("took", &json_string(&h.took))
                    .text("error", &h.error)
                    .finish()
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_client::proto::etcdserverpb::ResponseOp;

    fn hdr(revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 17092650975076487912,
            member_id: 6589899199127005451,
            revision,
            raft_term: 1,
        })
    }

    #[test]
    fn range_matches_etcdctl() {
        let r = RangeResponse {
            header: hdr(17),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 11,
                mod_revision: 17,
                version: 3,
                value: b"bar2".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        assert_eq!(
            range(&r),
            r#"{"header":{"cluster_id":17092650975076487912,"member_id":6589899199127005451,"revision":17,"raft_term":1},"kvs":[{"key":"Zm9v","create_revision":11,"mod_revision":17,"version":3,"value":"YmFyMg=="}],"count":1}"#
        );
    }

    #[test]
    fn empty_responses_keep_only_what_is_set() {
        assert_eq!(put(&PutResponse::default()), "{}");
        let d = DeleteRangeResponse {
            header: hdr(19),
            deleted: 1,
            prev_kvs: vec![],
        };
        assert_eq!(
            delete(&d),
            r#"{"header":{"cluster_id":17092650975076487912,"member_id":6589899199127005451,"revision":19,"raft_term":1},"deleted":1}"#
        );
    }

    #[test]
    fn txn_wraps_each_response_like_go() {
        let t = TxnResponse {
            header: None,
            succeeded: true,
            responses: vec![
                ResponseOp {
                    response: Some(Response::ResponsePut(PutResponse {
                        header: Some(ResponseHeader {
                            revision: 7,
                            ..Default::default()
                        }),
                        prev_kv: None,
                    })),
                },
                ResponseOp { response: None },
            ],
        };
        assert_eq!(
            txn(&t),
            r#"{"succeeded":true,"responses":[{"Response":{"ResponsePut":{"header":{"revision":7}}}},{"Response":null}]}"#
        );
    }

    #[test]
    fn status_prints_the_fields_of_etcd_3_4() {
        let s = StatusResponse {
            header: hdr(19),
            version: "3.5.0".into(),
            db_size: 67108864,
            leader: 6589899199127005451,
            raft_index: 26,
            raft_term: 1,
            raft_applied_index: 26,
            errors: vec![],
            db_size_in_use: 67108864,
            is_learner: false,
            storage_version: "3.6".into(),
            db_size_quota: 2,
            downgrade_info: None,
        };
        assert_eq!(
            endpoint_statuses(&[("127.0.0.1:23790".into(), s)]),
            r#"[{"Endpoint":"127.0.0.1:23790","Status":{"header":{"cluster_id":17092650975076487912,"member_id":6589899199127005451,"revision":19,"raft_term":1},"version":"3.5.0","dbSize":67108864,"leader":6589899199127005451,"raftIndex":26,"raftTerm":1,"raftAppliedIndex":26,"dbSizeInUse":67108864}}]"#
        );
        assert_eq!(endpoint_statuses(&[]), "[]");
    }

    #[test]
    fn health_always_has_endpoint_health_took() {
        let list = [
            Health {
                endpoint: "127.0.0.1:47391".into(),
                healthy: true,
                took: "2.289821ms".into(),
                error: String::new(),
            },
            Health {
                endpoint: "127.0.0.1:1".into(),
                healthy: false,
                took: "5.001576059s".into(),
                error: "context deadline exceeded".into(),
            },
        ];
        assert_eq!(
            endpoint_health(&list),
            r#"[{"endpoint":"127.0.0.1:47391","health":true,"took":"2.289821ms"},{"endpoint":"127.0.0.1:1","health":false,"took":"5.001576059s","error":"context deadline exceeded"}]"#
        );
    }
}
