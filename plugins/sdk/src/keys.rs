//! Key helpers with etcd's conventions, for the host's `range`.

/// The `end` that makes `range(prefix, end)` return every key starting with `prefix`, as
/// etcd's `clientv3.GetPrefixEnd`: the prefix with its last byte below 0xff incremented and
/// what follows dropped. A prefix of only 0xff bytes, or an empty one, has no such end: `[0]`,
/// which the host reads as "every key from `start` on".
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|b| *b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends() {
        assert_eq!(prefix_range_end(b"/services/web/"), b"/services/web0");
        assert_eq!(prefix_range_end(b"a"), b"b");
        assert_eq!(prefix_range_end(&[0x61, 0xff, 0xff]), vec![0x62]);
        assert_eq!(prefix_range_end(&[0xff]), vec![0]);
        assert_eq!(prefix_range_end(b""), vec![0]);
    }
}
