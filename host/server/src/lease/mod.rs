//! Leases on the server side: the replicated part (which leases exist, their keys) is in the
//! store; this is the time-keeping (every lease's clock, learned from apply, and the lessor
//! that acts on them) and the rules for granting.

mod clocks;
mod lessor;

pub use clocks::LeaseClocks;
pub use lessor::Lessor;

/// etcd's largest lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// etcd's smallest lease TTL: a lease must outlive an election, 1.5 election timeouts,
/// rounded up to whole seconds (2 s with the default 1000 ms).
pub fn min_lease_ttl(election_timeout_ms: u64) -> i64 {
    (3 * election_timeout_ms).div_ceil(2000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_is_one_and_a_half_election_timeouts_rounded_up() {
        assert_eq!(min_lease_ttl(1000), 2);
        assert_eq!(min_lease_ttl(2000), 3);
        assert_eq!(min_lease_ttl(100), 1);
        assert_eq!(min_lease_ttl(5000), 8);
    }
}
