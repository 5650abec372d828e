//! The load-test harness's parts, shared by its binaries: `flashcart-load` (the goose
//! scenarios, with their end-of-run verification) and `flashcart-wrk` (setup and counts
//! around a `wrk` run, the generator that is not the bottleneck).

pub mod plan;
pub mod scenarios;
pub mod stats;
pub mod verify;
