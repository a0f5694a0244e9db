//! Why a plugin's run on the leader failed: the reason its status shows, typed inside and
//! turned into text once, where the status records it.

use conclave_plugin::PluginError;
use conclave_store::{RequestError, StoreError, UnexpectedResponse};

use crate::error::ProposeError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading the plugin registry failed.
    #[error(transparent)]
    Registry(StoreError),
    #[error("cannot read history: {0}")]
    History(StoreError),
    #[error("cannot read election {name:?}: {error}")]
    Election { name: Vec<u8>, error: StoreError },
    /// Compiling, starting or calling the plugin failed: a trap, a timeout, out of memory.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// An output the plugin returned is not a write the store would take.
    #[error("{0}")]
    BadOutput(&'static str),
    #[error("no longer the leader")]
    NotLeader,
    /// A proposal (`what` it carried) did not commit.
    #[error("{what} not committed: {error}")]
    NotCommitted {
        what: &'static str,
        error: ProposeError,
    },
    /// A proposal (`what` it carried) was refused at apply.
    #[error("{what} refused: {error}")]
    Refused {
        what: &'static str,
        error: RequestError,
    },
    #[error("the plugin was removed")]
    Removed,
    #[error("another leader started this plugin meanwhile")]
    Superseded,
    /// The store answered a proposal with another kind of response, or a flush without its
    /// mark: what should not happen.
    #[error(transparent)]
    Unexpected(#[from] UnexpectedResponse),
    #[error("a flush was applied without a flush mark")]
    FlushWithoutMark,
}
