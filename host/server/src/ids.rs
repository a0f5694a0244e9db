//! Member and cluster IDs: stable 64-bit numbers derived from the member's name, its URLs and
//! the cluster token, as etcd derives its IDs, so that a restart keeps them; and lease IDs,
//! random.

/// FNV-1a, 64 bit: stable across builds and platforms, unlike std's hasher.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(&[0u8]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A member's ID: from its peer URLs (sorted) and the cluster token, as etcd derives it, so
/// every member computes every other member's ID from `--initial-cluster` alone.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut parts: Vec<&[u8]> = vec![token.as_bytes()];
    parts.extend(urls.iter().map(|u| u.as_bytes()));
    fnv1a(&parts)
}

pub fn cluster_id(members: &[u64], token: &str) -> u64 {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    let bytes: Vec<[u8; 8]> = sorted.iter().map(|m| m.to_be_bytes()).collect();
    let mut parts: Vec<&[u8]> = vec![token.as_bytes()];
    parts.extend(bytes.iter().map(|b| b.as_slice()));
    fnv1a(&parts)
}

/// A lease ID nobody chose: positive, so that etcdctl prints it as it prints etcd's.
pub fn random_lease_id() -> i64 {
    loop {
        let id = (rand_u64() >> 1) as i64;
        if id != 0 {
            return id;
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS per instance: enough for IDs, no extra crate.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = member_id(&["https://127.0.0.1:2380".into()], "t");
        assert_eq!(a, member_id(&["https://127.0.0.1:2380".into()], "t"));
        assert_ne!(a, member_id(&["https://127.0.0.1:2381".into()], "t"));
        assert_ne!(a, member_id(&["https://127.0.0.1:2380".into()], "u"));
        assert_ne!(cluster_id(&[a], "t"), cluster_id(&[a], "u"));
        assert_eq!(cluster_id(&[1, 2], "t"), cluster_id(&[2, 1], "t"));
    }
}
