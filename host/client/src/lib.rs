//! The conclave client library (see the crate description).
