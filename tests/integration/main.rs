//! Integration tests: the whole app through Rocket's local client, against a real PostgreSQL
//! (one fresh database per test, copied from a migrated template).

#[path = "../support/mod.rs"]
mod support;

mod activity;
mod anomalies;
mod api;
mod api_devices;
mod bad_input;
mod codes;
mod contract;
mod dbsc;
mod defaults;
mod devices;
mod endings;
mod foundation;
mod hashing;
mod hashing_cgroup;
mod logs;
mod outage;
mod pages;
mod passkeys;
mod races;
mod request_path;
mod retention;
mod roles;
mod test_hooks;
mod throttle;
