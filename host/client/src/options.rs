//! Options for the KV calls (get, put, delete), mirroring etcd's Go client options, and the
//! key-range helpers they share: prefix and from-key ranges as etcd encodes them.

use conclave_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest,
    range_request::{SortOrder, SortTarget},
};

pub use conclave_proto::prefix_range_end;

/// Which keys a request covers, besides its key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum KeyRange {
    /// The key alone.
    #[default]
    Single,
    /// `[key, end)`.
    End(Vec<u8>),
    /// Every key starting with the key; with an empty key, every key.
    Prefix,
    /// Every key `>=` the key; with an empty key, every key.
    FromKey,
}

impl KeyRange {
    /// The key and range_end to send, following etcd's Go client: an empty key with a prefix or
    /// from-key range means every key (`"\0"`, `"\0"`).
    fn resolve(&self, key: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
        match self {
            KeyRange::Single => (key, Vec::new()),
            KeyRange::End(end) => (key, end.clone()),
            KeyRange::Prefix if key.is_empty() => (vec![0], vec![0]),
            KeyRange::Prefix => {
                let end = prefix_range_end(&key);
                (key, end)
            }
            KeyRange::FromKey if key.is_empty() => (vec![0], vec![0]),
            KeyRange::FromKey => (key, vec![0]),
        }
    }
}

/// Options for [`Client::get`](crate::Client::get) (etcd's Range).
///
/// ```
/// use conclave_client::{GetOptions, SortOrder, SortTarget};
///
/// let opts = GetOptions::new()
///     .with_prefix()
///     .with_limit(10)
///     .with_sort(SortTarget::Mod, SortOrder::Descend)
///     .with_serializable();
/// let req = opts.into_request("/services/");
/// assert_eq!(req.range_end, b"/services0");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetOptions {
    range: KeyRange,
    limit: i64,
    revision: i64,
    sort_order: SortOrder,
    sort_target: SortTarget,
    serializable: bool,
    keys_only: bool,
    count_only: bool,
    min_mod_revision: i64,
    max_mod_revision: i64,
    min_create_revision: i64,
    max_create_revision: i64,
}

impl GetOptions {
    /// The defaults: the key alone, latest revision, linearizable, no limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Covers `[key, end)`. An `end` of `"\0"` means every key from `key` on.
    pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.range = KeyRange::End(end.into());
        self
    }

    /// Covers every key starting with the key (every key, if the key is empty).
    pub fn with_prefix(mut self) -> Self {
        self.range = KeyRange::Prefix;
        self
    }

    /// Covers every key greater than or equal to the key.
    pub fn with_from_key(mut self) -> Self {
        self.range = KeyRange::FromKey;
        self
    }

    /// Returns at most `limit` keys (0: no limit); the response's `more` tells if it was cut.
    pub fn with_limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Reads at this revision (0 or less: the latest).
    pub fn with_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// Sorts the results. Key order ascending is what the server returns anyway, so it is sent
    /// as no sort, as etcd's Go client does, which lets the server stop at the limit.
    pub fn with_sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.sort_target = target;
        self.sort_order = order;
        self
    }

    /// Serves the read from the member's local state, without a linearizability round.
    pub fn with_serializable(mut self) -> Self {
        self.serializable = true;
        self
    }

    /// Returns keys without their values.
    pub fn with_keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }

    /// Returns only the count of matching keys.
    pub fn with_count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    /// Only keys last modified at or after this revision.
    pub fn with_min_mod_revision(mut self, revision: i64) -> Self {
        self.min_mod_revision = revision;
        self
    }

    /// Only keys last modified at or before this revision.
    pub fn with_max_mod_revision(mut self, revision: i64) -> Self {
        self.max_mod_revision = revision;
        self
    }

    /// Only keys created at or after this revision.
    pub fn with_min_create_revision(mut self, revision: i64) -> Self {
        self.min_create_revision = revision;
        self
    }

    /// Only keys created at or before this revision.
    pub fn with_max_create_revision(mut self, revision: i64) -> Self {
        self.max_create_revision = revision;
        self
    }

    /// The Range request these options make for `key`.
    pub fn into_request(self, key: impl Into<Vec<u8>>) -> RangeRequest {
        let (key, range_end) = self.range.resolve(key.into());
        let sort_order =
            if self.sort_target == SortTarget::Key && self.sort_order == SortOrder::Ascend {
                SortOrder::None
            } else {
                self.sort_order
            };
        RangeRequest {
            key,
            range_end,
            limit: self.limit,
            revision: self.revision,
            sort_order: sort_order.into(),
            sort_target: self.sort_target.into(),
            serializable: self.serializable,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: self.min_mod_revision,
            max_mod_revision: self.max_mod_revision,
            min_create_revision: self.min_create_revision,
            max_create_revision: self.max_create_revision,
        }
    }
}

/// Options for [`Client::put`](crate::Client::put).
///
/// ```
/// use conclave_client::PutOptions;
///
/// let req = PutOptions::new().with_prev_kv().with_lease(0x1234).into_request("k", "v");
/// assert!(req.prev_kv);
/// assert_eq!(req.lease, 0x1234);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
}

impl PutOptions {
    /// The defaults: no lease, no previous pair returned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches the key to this lease (0: none).
    pub fn with_lease(mut self, lease: i64) -> Self {
        self.lease = lease;
        self
    }

    /// Returns the key-value pair as it was before this put.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Keeps the key's current value (the value given must then be empty).
    pub fn with_ignore_value(mut self) -> Self {
        self.ignore_value = true;
        self
    }

    /// Keeps the key's current lease (no lease may then be given).
    pub fn with_ignore_lease(mut self) -> Self {
        self.ignore_lease = true;
        self
    }

    /// The Put request these options make for `key` and `value`.
    pub fn into_request(self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> PutRequest {
        PutRequest {
            key: key.into(),
            value: value.into(),
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }
}

/// Options for [`Client::delete`](crate::Client::delete) (etcd's DeleteRange).
///
/// ```
/// use conclave_client::DeleteOptions;
///
/// let req = DeleteOptions::new().with_from_key().with_prev_kv().into_request("b");
/// assert_eq!(req.range_end, b"\0");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    range: KeyRange,
    prev_kv: bool,
}

impl DeleteOptions {
    /// The defaults: the key alone, no previous pairs returned.
    pub fn new() -> Self {
        Self::default()
    }

    /// Covers `[key, end)`.
    pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.range = KeyRange::End(end.into());
        self
    }

    /// Covers every key starting with the key (every key, if the key is empty).
    pub fn with_prefix(mut self) -> Self {
        self.range = KeyRange::Prefix;
        self
    }

    /// Covers every key greater than or equal to the key.
    pub fn with_from_key(mut self) -> Self {
        self.range = KeyRange::FromKey;
        self
    }

    /// Returns the deleted key-value pairs.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// The DeleteRange request these options make for `key`.
    pub fn into_request(self, key: impl Into<Vec<u8>>) -> DeleteRangeRequest {
        let (key, range_end) = self.range.resolve(key.into());
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.prev_kv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_ff() {
        assert_eq!(prefix_range_end(b"a"), b"b");
        assert_eq!(prefix_range_end(b"ab\xff\xff"), b"ac");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
    }

    #[test]
    fn get_defaults_read_one_key() {
        let req = GetOptions::new().into_request("k");
        assert_eq!(req.key, b"k");
        assert!(req.range_end.is_empty());
        assert_eq!(
            req,
            RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn prefix_and_from_key_with_an_empty_key_cover_everything() {
        for opts in [
            GetOptions::new().with_prefix(),
            GetOptions::new().with_from_key(),
        ] {
            let req = opts.into_request("");
            assert_eq!((req.key, req.range_end), (vec![0], vec![0]));
        }
        let req = DeleteOptions::new().with_prefix().into_request("");
        assert_eq!((req.key, req.range_end), (vec![0], vec![0]));
    }

    #[test]
    fn the_last_range_option_wins() {
        let req = GetOptions::new()
            .with_range_end("z")
            .with_prefix()
            .into_request("a");
        assert_eq!(req.range_end, b"b");
        let req = GetOptions::new()
            .with_prefix()
            .with_range_end("z")
            .into_request("a");
        assert_eq!(req.range_end, b"z");
        let req = GetOptions::new()
            .with_prefix()
            .with_from_key()
            .into_request("a");
        assert_eq!(req.range_end, b"\0");
    }

    #[test]
    fn key_ascending_is_sent_as_no_sort() {
        let req = GetOptions::new()
            .with_sort(SortTarget::Key, SortOrder::Ascend)
            .into_request("k");
        assert_eq!(req.sort_order, SortOrder::None as i32);
        let req = GetOptions::new()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .into_request("k");
        assert_eq!(req.sort_order, SortOrder::Descend as i32);
        let req = GetOptions::new()
            .with_sort(SortTarget::Value, SortOrder::Ascend)
            .into_request("k");
        assert_eq!(
            (req.sort_target, req.sort_order),
            (SortTarget::Value as i32, SortOrder::Ascend as i32)
        );
    }

    #[test]
    fn every_get_option_reaches_the_request() {
        let req = GetOptions::new()
            .with_limit(3)
            .with_revision(7)
            .with_serializable()
            .with_keys_only()
            .with_count_only()
            .with_min_mod_revision(1)
            .with_max_mod_revision(2)
            .with_min_create_revision(3)
            .with_max_create_revision(4)
            .into_request("k");
        assert_eq!((req.limit, req.revision), (3, 7));
        assert!(req.serializable && req.keys_only && req.count_only);
        assert_eq!(
            (
                req.min_mod_revision,
                req.max_mod_revision,
                req.min_create_revision,
                req.max_create_revision
            ),
            (1, 2, 3, 4)
        );
    }

    #[test]
    fn put_options_map_one_to_one() {
        let req = PutOptions::new()
            .with_lease(9)
            .with_prev_kv()
            .with_ignore_value()
            .with_ignore_lease()
            .into_request("k", "");
        assert_eq!(req.lease, 9);
        assert!(req.prev_kv && req.ignore_value && req.ignore_lease);
    }

    #[test]
    fn delete_options_map_ranges() {
        let req = DeleteOptions::new()
            .with_prefix()
            .with_prev_kv()
            .into_request("ab");
        assert_eq!(
            (req.key.as_slice(), req.range_end.as_slice()),
            (&b"ab"[..], &b"ac"[..])
        );
        assert!(req.prev_kv);
        let req = DeleteOptions::new().with_range_end("b").into_request("a");
        assert_eq!(req.range_end, b"b");
    }
}
