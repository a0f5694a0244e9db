//! The generated types speak etcd's wire format and etcd's gateway JSON.

use conclave_proto::etcdserverpb::{
    Compare, Member, RangeRequest, RangeResponse, ResponseHeader, compare, range_request,
};
use conclave_proto::mvccpb::KeyValue;
use prost::Message;

#[test]
fn range_request_round_trips() {
    let req = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        limit: 10,
        revision: 7,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        min_mod_revision: 2,
        max_create_revision: 9,
        ..Default::default()
    };
    let bytes = req.encode_to_vec();
    assert_eq!(RangeRequest::decode(bytes.as_slice()).unwrap(), req);
}

#[test]
fn compare_with_range_end_round_trips() {
    let cmp = Compare {
        result: compare::CompareResult::NotEqual as i32,
        target: compare::CompareTarget::Value as i32,
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        target_union: Some(compare::TargetUnion::Value(b"v".to_vec())),
    };
    let bytes = cmp.encode_to_vec();
    assert_eq!(Compare::decode(bytes.as_slice()).unwrap(), cmp);
}

#[test]
fn json_uses_proto_names_string_int64_and_base64_bytes() {
    let resp = RangeResponse {
        header: Some(ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 6,
            raft_term: 3,
        }),
        kvs: vec![KeyValue {
            key: b"foo".to_vec(),
            value: b"bar".to_vec(),
            create_revision: 5,
            mod_revision: 6,
            version: 2,
            lease: 0,
        }],
        more: false,
        count: 1,
    };
    let json = serde_json::to_string(&resp).unwrap();
    assert!(json.contains(r#""create_revision":"5""#), "{json}");
    assert!(json.contains(r#""mod_revision":"6""#), "{json}");
    assert!(json.contains(r#""raft_term":"3""#), "{json}");
    assert!(json.contains(r#""key":"Zm9v""#), "{json}");
    assert!(json.contains(r#""value":"YmFy""#), "{json}");
    assert!(json.contains(r#""count":"1""#), "{json}");
    // Defaults are omitted, as etcd's gateway does.
    assert!(!json.contains("lease"), "{json}");
    assert!(!json.contains("more"), "{json}");

    let back: RangeResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(back, resp);

    // etcd's camelCase proto names are kept as they are.
    let member = Member {
        id: 1,
        is_learner: true,
        peer_ur_ls: vec!["http://a:2380".into()],
        ..Default::default()
    };
    let json = serde_json::to_string(&member).unwrap();
    assert!(json.contains(r#""ID":"1""#), "{json}");
    assert!(json.contains(r#""isLearner":true"#), "{json}");
    assert!(json.contains(r#""peerURLs":["http://a:2380"]"#), "{json}");
}

/// The encoded key of a field: `(number << 3) | wire_type`, as a varint.
fn tag(field: u32, wire_type: u32) -> Vec<u8> {
    let mut v = u64::from((field << 3) | wire_type);
    let mut out = Vec::new();
    loop {
        let byte = u8::try_from(v & 0x7f).unwrap();
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn field_numbers_match_etcd() {
    const VARINT: u32 = 0;
    const LEN: u32 = 2;

    let cmp = Compare {
        range_end: b"z".to_vec(),
        ..Default::default()
    };
    assert_eq!(cmp.encode_to_vec(), [tag(64, LEN), vec![1, b'z']].concat());

    let req = RangeRequest {
        max_create_revision: 1,
        ..Default::default()
    };
    assert_eq!(req.encode_to_vec(), [tag(13, VARINT), vec![1]].concat());

    let member = Member {
        is_learner: true,
        ..Default::default()
    };
    assert_eq!(member.encode_to_vec(), [tag(5, VARINT), vec![1]].concat());

    let watch = conclave_proto::etcdserverpb::WatchResponse {
        events: vec![Default::default()],
        ..Default::default()
    };
    assert_eq!(watch.encode_to_vec(), [tag(11, LEN), vec![0]].concat());
}

#[test]
fn command_wraps_kv_requests() {
    use conclave_proto::conclavepb::{Command, command};
    let cmd = Command {
        request: Some(command::Request::Compaction(
            conclave_proto::etcdserverpb::CompactionRequest {
                revision: 3,
                physical: false,
            },
        )),
        stamp_ms: 0,
        checked_for: None,
    };
    let bytes = cmd.encode_to_vec();
    assert_eq!(bytes, [tag(4, 2), vec![2], tag(1, 0), vec![3]].concat());
    assert_eq!(Command::decode(bytes.as_slice()).unwrap(), cmd);
}
