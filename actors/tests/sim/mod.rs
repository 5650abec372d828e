//! The deterministic simulation's parts, shared by the simulation test and the actor
//! tests: a seeded generator, a fault-injecting switchboard in front of a real SQLite
//! database, the simulated process, and an auditor that reads the database on its own.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub mod auditor;
pub mod faulty_store;
pub mod rng;
pub mod world;
