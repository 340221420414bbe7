//! Browser tests: real headless Chromium, driven through ChromeDriver, against the app served
//! on 127.0.0.1.

#[path = "../support/mod.rs"]
mod support;
