//! Browser tests: real headless Chromium, driven through ChromeDriver, against the app served
//! on 127.0.0.1. Screenshots of every page land in target/screenshots/.

#[path = "../support/mod.rs"]
mod support;

mod anomalies;
mod dbsc;
mod devices;
mod endings;
mod foundation;
mod harness;
mod notices;
mod pages;
mod passkeys;
mod tabs;
mod throttle;
mod tls;
