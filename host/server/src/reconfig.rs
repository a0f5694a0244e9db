//! etcd's `--strict-reconfig-check` (on by default, as in etcd): the leader refuses a change
//! of voters that would leave the cluster without a working quorum. Adding or promoting a
//! voter needs every voter to be in touch. Removing one that is in touch needs the voters
//! still in touch after it leaves to be a quorum of the smaller cluster. Removing one that is
//! down is always allowed. "In touch" means the member acknowledged the leader within etcd's
//! health interval. Changes of learners, and of members' attributes, are never refused.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::cluster_view::MembershipChange;
use crate::error::ClusterError;

/// etcd's HealthInterval: a member acknowledged within it counts as in touch.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// Whether `change` may go ahead, given the current `voters` and which of them are `active`
/// (the leader always is).
pub fn check(
    change: &MembershipChange,
    voters: &BTreeSet<u64>,
    active: &BTreeSet<u64>,
) -> Result<(), ClusterError> {
    let in_touch = voters.intersection(active).count();
    let breaks_quorum = match change {
        MembershipChange::AddVoter(..) | MembershipChange::Promote(_) => in_touch < voters.len(),
        MembershipChange::RemoveVoter(id) => {
            let leaving = usize::from(voters.contains(id) && active.contains(id));
            let remaining = voters.len() - usize::from(voters.contains(id));
            leaving > 0 && in_touch - leaving < remaining / 2 + 1
        }
        _ => false,
    };
    if breaks_quorum {
        return Err(ClusterError::Unhealthy);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    fn add(id: u64) -> MembershipChange {
        MembershipChange::Promote(id)
    }

    fn remove(id: u64) -> MembershipChange {
        MembershipChange::RemoveVoter(id)
    }

    #[test]
    fn adding_a_voter_needs_every_voter_in_touch() {
        assert!(check(&add(4), &set(&[1, 2, 3]), &set(&[1, 2, 3])).is_ok());
        let refused =
            tonic::Status::from(check(&add(4), &set(&[1, 2, 3]), &set(&[1, 2])).unwrap_err());
        assert_eq!(refused.message(), "etcdserver: unhealthy cluster");
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        // A cluster of one grows to two (etcd's special case).
        assert!(check(&add(2), &set(&[1]), &set(&[1])).is_ok());
    }

    #[test]
    fn removing_a_down_voter_is_always_allowed() {
        assert!(check(&remove(3), &set(&[1, 2, 3]), &set(&[1])).is_ok());
    }

    #[test]
    fn removing_a_live_voter_keeps_a_quorum_in_touch() {
        // 1, 2, 3 in touch: removing 3 leaves 1 and 2, a quorum of two.
        assert!(check(&remove(3), &set(&[1, 2, 3]), &set(&[1, 2, 3])).is_ok());
        // 3 down: removing live 2 would leave 1 alone of {1, 3}, no quorum in touch.
        assert!(check(&remove(2), &set(&[1, 2, 3]), &set(&[1, 2])).is_err());
        // Five members, two down: removing a live one leaves 2 of 4 in touch, short of 3.
        assert!(check(&remove(3), &set(&[1, 2, 3, 4, 5]), &set(&[1, 2, 3])).is_err());
        assert!(check(&remove(5), &set(&[1, 2, 3, 4, 5]), &set(&[1, 2, 3])).is_ok());
    }

    #[test]
    fn learners_and_attributes_are_never_refused() {
        let learner = MembershipChange::AddLearner(4, Default::default());
        assert!(check(&learner, &set(&[1, 2, 3]), &set(&[1])).is_ok());
        let attributes = MembershipChange::SetMember(2, Default::default());
        assert!(check(&attributes, &set(&[1, 2, 3]), &set(&[1])).is_ok());
    }
}
