//! The `sessions` settings table of `Rocket.toml`, read once at ignite.

use rocket::serde::Deserialize;
use std::path::{Path, PathBuf};
use time::Duration;

use crate::users::hashing::HashingSettings;
use crate::users::hashing::process::MAX_NICE;

/// Every knob of the session design. Durations are whole seconds with the unit in the name.
#[derive(Debug, Clone, Deserialize)]
#[serde(crate = "rocket::serde", default, deny_unknown_fields)]
pub struct SessionConfig {
    pub idle_timeout_secs: u32,
    pub absolute_timeout_secs: u32,
    /// An administrator's idle timeout (applied from the role read on each request). It only
    /// ever tightens `idle_timeout_secs`.
    pub admin_idle_timeout_secs: u32,
    /// An administrator's absolute lifetime from sign-in; only ever tightens `absolute_timeout_secs`.
    pub admin_absolute_timeout_secs: u32,
    pub touch_interval_secs: u32,
    pub confirm_window_secs: u32,
    pub tombstone_grace_secs: u32,
    /// How long before the idle timeout a page warns and offers "Stay signed in".
    pub idle_warning_secs: u32,
    pub max_sessions_per_user: u32,
    /// Live API token families per user; the least recently used beyond it end.
    pub max_api_families_per_user: u32,
    /// Request parts whose change ends the session (header names, or `ip`).
    pub fingerprint_bind: Vec<String>,
    /// Request parts whose change is recorded but keeps the session.
    pub fingerprint_watch: Vec<String>,
    /// A session that comes back to the network it has just left this many times in a row, each
    /// within `network_alternation_window_secs` of the change before, ends (`network_alternation`):
    /// a cookie used by turns from two networks is in two places.
    pub network_alternations_max: u32,
    pub network_alternation_window_secs: u32,
    /// An API token family refreshed more often than this within one `access_token_secs` ends: a
    /// client needs about one refresh per access token.
    pub max_refreshes_per_access_lifetime: u32,
    /// A sign-in from a new device and a new network after at least this many failed sign-ins on
    /// the account within `suspicious_sign_in_window_secs` is marked in the security activity.
    pub suspicious_sign_in_failures: u32,
    pub suspicious_sign_in_window_secs: u32,
    pub cookie_name: String,
    pub reaper_interval_secs: u32,
    pub reaper_batch_size: u32,
    /// Security events older than this are deleted by the reaper.
    pub event_retention_days: u32,
    /// Addresses in security events older than this are cut to their network prefix.
    pub address_retention_days: u32,
    /// Bound on argon2 hashes running at once (each takes 19 MiB and a core). Default: one per
    /// core, since more hashing threads than cores add memory, not speed.
    pub max_concurrent_hashes: u32,
    /// Password checks admitted at once: as many as the hashing threads finish in this long at
    /// the measured speed of a hash. One more gets 503 with `Retry-After` at once (README,
    /// "Configuration").
    pub hashing_admission_ms: u32,
    /// The niceness (0 to 19) of the hashing process's scheduling group, which it has because it
    /// runs in a session of its own: the higher, the more a sign-in flood yields the cores to the
    /// session path and PostgreSQL (README, "Configuration").
    pub hashing_nice: u8,
    /// A cgroup directory (cgroup v2 threaded, or v1 `cpu`) that the hashing threads join at
    /// start. Given a low CPU weight by the operator, it keeps a sign-in flood off the cores the
    /// session path and PostgreSQL need (README, "Configuration"). None: they stay with the app's.
    pub hashing_cgroup: Option<PathBuf>,
    /// The binary started as the hashing process, with the argument `hash-passwords`. None: this
    /// app's own binary. Test suites name the app's binary here, since theirs is a test runner.
    pub hashing_program: Option<PathBuf>,
    /// Create the demo accounts at start. Ignored by release builds.
    pub seed_demo_users: bool,
    /// Send Strict-Transport-Security (release profile: served behind TLS).
    pub hsts: bool,
    /// Lifetime of an API access token.
    pub access_token_secs: u32,
    /// Absolute lifetime of an API token family: refreshing never extends it.
    pub refresh_token_secs: u32,
    /// Failed sign-ins per account within the throttle window before attempts are delayed.
    pub throttle_account_failures: u32,
    /// Failed sign-ins per client address within the window: high, so an office behind one
    /// address does not lock itself out.
    pub throttle_ip_failures: u32,
    /// Wrong passwords a signed-in session may give when its password is checked again
    /// (confirmation, password change) within the window before it waits: a budget of its own.
    pub throttle_session_failures: u32,
    /// Sign-ups per client address within the window.
    pub throttle_ip_sign_ups: u32,
    /// How long a failed sign-in (or a sign-up) counts, and the longest delay the throttle imposes.
    pub throttle_window_secs: u32,
    /// Lifetime of a device-bound session's token (and its cookie): past it, only a refresh
    /// signed with the device's key brings a new one.
    pub bound_cookie_secs: u32,
    /// Test mode: mount the `/__test/` API for end-to-end suites (`crate::test_hooks`).
    pub test_hooks: bool,
    /// The second switch test mode needs in the release profile or a release build.
    pub test_hooks_in_release: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout_secs: 30 * 60,
            absolute_timeout_secs: 12 * 60 * 60,
            admin_idle_timeout_secs: 15 * 60,
            admin_absolute_timeout_secs: 4 * 60 * 60,
            touch_interval_secs: 60,
            confirm_window_secs: 10 * 60,
            tombstone_grace_secs: 60 * 60,
            idle_warning_secs: 2 * 60,
            max_sessions_per_user: 5,
            max_api_families_per_user: 10,
            fingerprint_bind: vec![
                "user-agent".into(),
                "sec-ch-ua".into(),
                "accept-language".into(),
            ],
            fingerprint_watch: vec!["ip".into()],
            network_alternations_max: 8,
            network_alternation_window_secs: 60,
            max_refreshes_per_access_lifetime: 10,
            suspicious_sign_in_failures: 3,
            suspicious_sign_in_window_secs: 60 * 60,
            cookie_name: "__Host-sid".into(),
            reaper_interval_secs: 60,
            reaper_batch_size: 500,
            event_retention_days: 90,
            address_retention_days: 30,
            max_concurrent_hashes: std::thread::available_parallelism()
                .map_or(1, |cores| cores.get() as u32),
            hashing_admission_ms: 1000,
            hashing_nice: 0,
            hashing_cgroup: None,
            hashing_program: None,
            seed_demo_users: false,
            hsts: false,
            access_token_secs: 15 * 60,
            refresh_token_secs: 7 * 24 * 60 * 60,
            throttle_account_failures: 5,
            throttle_ip_failures: 50,
            throttle_session_failures: 5,
            throttle_ip_sign_ups: 10,
            throttle_window_secs: 15 * 60,
            bound_cookie_secs: 10 * 60,
            test_hooks: false,
            test_hooks_in_release: false,
        }
    }
}

impl SessionConfig {
    pub fn idle_timeout(&self) -> Duration {
        Duration::seconds(self.idle_timeout_secs.into())
    }

    pub fn absolute_timeout(&self) -> Duration {
        Duration::seconds(self.absolute_timeout_secs.into())
    }

    pub fn admin_idle_timeout(&self) -> Duration {
        Duration::seconds(self.admin_idle_timeout_secs.into())
    }

    pub fn admin_absolute_timeout(&self) -> Duration {
        Duration::seconds(self.admin_absolute_timeout_secs.into())
    }

    pub fn touch_interval(&self) -> Duration {
        Duration::seconds(self.touch_interval_secs.into())
    }

    pub fn confirm_window(&self) -> Duration {
        Duration::seconds(self.confirm_window_secs.into())
    }

    pub fn tombstone_grace(&self) -> Duration {
        Duration::seconds(self.tombstone_grace_secs.into())
    }

    pub fn access_token_lifetime(&self) -> Duration {
        Duration::seconds(self.access_token_secs.into())
    }

    pub fn refresh_token_lifetime(&self) -> Duration {
        Duration::seconds(self.refresh_token_secs.into())
    }

    pub fn throttle_window(&self) -> Duration {
        Duration::seconds(self.throttle_window_secs.into())
    }

    pub fn event_retention(&self) -> Duration {
        Duration::days(self.event_retention_days.into())
    }

    pub fn address_retention(&self) -> Duration {
        Duration::days(self.address_retention_days.into())
    }

    pub fn network_alternation_window(&self) -> Duration {
        Duration::seconds(self.network_alternation_window_secs.into())
    }

    pub fn suspicious_sign_in_window(&self) -> Duration {
        Duration::seconds(self.suspicious_sign_in_window_secs.into())
    }

    pub fn bound_cookie_lifetime(&self) -> Duration {
        Duration::seconds(self.bound_cookie_secs.into())
    }

    /// How the hashing process runs (`users::hashing`).
    pub fn hashing_settings(&self) -> HashingSettings {
        HashingSettings {
            threads: self.max_concurrent_hashes as usize,
            nice: self.hashing_nice,
            cgroup: self.hashing_cgroup.clone(),
        }
    }

    /// How long the work admitted at once may take the hashing threads (`users::hashing`).
    pub fn hashing_admission(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.hashing_admission_ms.into())
    }

    /// The binary started as the hashing process: `hashing_program`, or this app's own.
    /// `/proc/self/exe` names the running binary even after a deploy has replaced its file, so
    /// the two processes are always the same version.
    pub fn hashing_binary(&self) -> &Path {
        self.hashing_program
            .as_deref()
            .unwrap_or(Path::new("/proc/self/exe"))
    }

    /// Rejects settings that would make the design's guarantees false.
    pub fn validate(&self) -> Result<(), String> {
        if self.idle_timeout_secs == 0
            || self.absolute_timeout_secs == 0
            || self.admin_idle_timeout_secs == 0
            || self.admin_absolute_timeout_secs == 0
        {
            return Err("timeouts must be at least one second".into());
        }
        if self.touch_interval_secs >= self.idle_timeout_secs.min(self.admin_idle_timeout_secs) {
            return Err(
                "touch_interval_secs must be shorter than idle_timeout_secs and admin_idle_timeout_secs"
                    .into(),
            );
        }
        if self.max_sessions_per_user == 0
            || self.max_api_families_per_user == 0
            || self.max_concurrent_hashes == 0
            || self.hashing_admission_ms == 0
        {
            return Err("max_sessions_per_user, max_api_families_per_user, max_concurrent_hashes and hashing_admission_ms must be positive".into());
        }
        if self.access_token_secs == 0 || self.access_token_secs > self.refresh_token_secs {
            return Err("access_token_secs must be positive and at most refresh_token_secs".into());
        }
        if self.throttle_account_failures == 0
            || self.throttle_ip_failures == 0
            || self.throttle_window_secs == 0
        {
            return Err("throttle_account_failures, throttle_ip_failures and throttle_window_secs must be positive".into());
        }
        if self.throttle_session_failures == 0 || self.throttle_ip_sign_ups == 0 {
            return Err(
                "throttle_session_failures and throttle_ip_sign_ups must be positive".into(),
            );
        }
        if self.bound_cookie_secs == 0 || self.bound_cookie_secs > self.absolute_timeout_secs {
            return Err(
                "bound_cookie_secs must be positive and at most absolute_timeout_secs".into(),
            );
        }
        if self.network_alternations_max == 0
            || self.max_refreshes_per_access_lifetime == 0
            || self.suspicious_sign_in_failures == 0
        {
            return Err("network_alternations_max, max_refreshes_per_access_lifetime and suspicious_sign_in_failures must be positive".into());
        }
        if self.event_retention_days == 0 || self.address_retention_days == 0 {
            return Err("event_retention_days and address_retention_days must be positive".into());
        }
        if self.reaper_batch_size == 0 {
            return Err("reaper_batch_size must be positive".into());
        }
        if self
            .hashing_cgroup
            .as_ref()
            .is_some_and(|dir| !dir.is_absolute())
        {
            return Err("hashing_cgroup must be an absolute path".into());
        }
        if self
            .hashing_program
            .as_ref()
            .is_some_and(|program| !program.is_absolute())
        {
            return Err("hashing_program must be an absolute path".into());
        }
        if self.hashing_nice > MAX_NICE {
            return Err(format!("hashing_nice must be between 0 and {MAX_NICE}"));
        }
        if !self.cookie_name.starts_with("__Host-") {
            return Err(
                "cookie_name must keep the __Host- prefix (no Domain, Secure, Path=/)".into(),
            );
        }
        Ok(())
    }
}
