//! Fault tests: the real app binary and real PostgreSQL servers, broken on purpose under load.
//! PostgreSQL stopped, killed and failed over; the app killed, stopped with SIGTERM, starved of
//! connections, and run twice on one database. Every test owns its servers (loopback only) and
//! is bounded in time: docs/operations.md, "Faults and failover" says what each one proves.

#[path = "../support/mod.rs"]
mod support;

mod harness;

mod app_process;
mod database;
mod failover;
mod slow_clients;
mod two_instances;
