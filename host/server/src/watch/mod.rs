//! Watch: the hub that fans applied batches out to the streams, the streams, and their
//! watchers. Any member serves watches, followers included: every member applies every batch.

mod hub;
mod stream;
mod watcher;

pub use hub::WatchHub;
pub use stream::{StreamConfig, WatchStream};
