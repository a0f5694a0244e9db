//! Periodic work only the leader does (scheduled backups, the corruption check): a ticker
//! that skips the ticks at which this member does not lead.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::node::Node;

pub struct LeaderTicks {
    node: Arc<Node>,
    ticker: Interval,
}

impl LeaderTicks {
    /// Ticks every `every`, the first one period from now.
    pub fn new(node: Arc<Node>, every: Duration) -> Self {
        let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { node, ticker }
    }

    /// Waits for the next tick at which this member leads.
    pub async fn next(&mut self) {
        loop {
            self.ticker.tick().await;
            if self.node.cluster.is_leader() {
                return;
            }
        }
    }
}
