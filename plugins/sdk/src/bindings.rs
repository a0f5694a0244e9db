//! The wit-bindgen output for both worlds of `wit/plugin.wit`, generated once each.
//!
//! The aggregator world is generated in full; the election-hook world reuses its `types` and
//! `host` through `with`, so both worlds share one `Output`, one `KeyValue` and one set of
//! host functions. A plugin exports one world only: wit-bindgen keeps in this library only a
//! description of each world's imports, and the export macro (run in the plugin's crate) adds
//! the description with the exports, so a component ends up exporting exactly the world
//! whose macro it used.

/// The `aggregator-plugin` world: imports `host`, exports `aggregator`.
pub mod aggregator {
    wit_bindgen::generate!({
        world: "aggregator-plugin",
        // Relative to this crate's Cargo.toml: plugins/sdk -> wit/ at the repository root.
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        additional_derives: [PartialEq],
    });
}

/// The `election-hook-plugin` world: imports `host`, exports `election-hook`.
pub mod election_hook {
    wit_bindgen::generate!({
        world: "election-hook-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        with: {
            "conclave:plugin/types@0.1.0": crate::bindings::aggregator::conclave::plugin::types,
            "conclave:plugin/host@0.1.0": crate::bindings::aggregator::conclave::plugin::host,
        },
    });
}

/// The shared types under one short path.
pub mod types {
    pub use super::aggregator::conclave::plugin::types::*;
    pub use super::aggregator::exports::conclave::plugin::aggregator::Spec;
}
