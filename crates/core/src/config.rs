//! The `sessions` settings table of `Rocket.toml`, read once at ignite.

use serde::Deserialize;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use time::Duration;

use crate::users::hashing::HashingSettings;

const DAY: u32 = 24 * 60 * 60;
const MONTH: u32 = 31 * DAY;
const YEAR: u32 = 366 * DAY;
const MILLION: u32 = 1_000_000;

/// The defaults of the settings whose default follows another setting (see their accessors).
const DEFAULT_TOUCH_INTERVAL_SECS: u32 = 60;
const DEFAULT_IDLE_WARNING_SECS: u32 = 2 * 60;
const DEFAULT_ACCESS_TOKEN_SECS: u32 = 15 * 60;
const DEFAULT_BOUND_COOKIE_SECS: u32 = 10 * 60;

/// Every knob of the session design. Durations are whole seconds with the unit in the name.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    pub idle_timeout_secs: u32,
    pub absolute_timeout_secs: u32,
    /// An administrator's idle timeout (applied from the role read on each request). It only
    /// ever tightens `idle_timeout_secs`.
    pub admin_idle_timeout_secs: u32,
    /// An administrator's absolute lifetime from sign-in; only ever tightens `absolute_timeout_secs`.
    pub admin_absolute_timeout_secs: u32,
    /// How often last-seen is written at most. Unset: 60 s, or a tenth of the shortest idle
    /// timeout if that is less (`touch_interval`).
    pub touch_interval_secs: Option<u32>,
    pub confirm_window_secs: u32,
    pub tombstone_grace_secs: u32,
    /// How long before the idle timeout a page warns and offers "Stay signed in". Unset: 120 s,
    /// or half the shortest idle timeout if that is less (`idle_warning_secs`).
    pub idle_warning_secs: Option<u32>,
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
    /// the measured speed of a hash. One more gets 503 with `Retry-After` at once
    /// (docs/configuration.md).
    pub hashing_admission_ms: u32,
    /// A cgroup directory (cgroup v2 threaded, or v1 `cpu`) that the hashing threads join at
    /// start. Given a low CPU weight by the operator, it keeps a sign-in flood off the cores the
    /// session path and PostgreSQL need (docs/configuration.md). None: they stay with the app's.
    pub hashing_cgroup: Option<PathBuf>,
    /// Create the demo accounts at start. Ignored by release builds.
    pub seed_demo_users: bool,
    /// Send Strict-Transport-Security (release profile: served behind TLS).
    pub hsts: bool,
    /// Lifetime of an API access token. Unset: 15 min, or `refresh_token_secs` if that is less.
    pub access_token_secs: Option<u32>,
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
    /// signed with the device's key brings a new one. Unset: 10 min, or `absolute_timeout_secs`
    /// if that is less.
    pub bound_cookie_secs: Option<u32>,
    /// The origin passkeys are made for and used from (`https://example.com`): the browser's
    /// answer must name exactly this one. Unset: `http://localhost:PORT` for an app listening on
    /// a loopback address; on any other address it must be set. Checked at start
    /// (`passkeys::RelyingParty::new`).
    pub passkey_origin: Option<String>,
    /// The relying party id passkeys are bound to: the origin's host or a parent domain of it.
    /// Unset: the origin's host.
    pub passkey_rp_id: Option<String>,
    /// How long a passkey registration or sign-in may take, from its options to its answer.
    pub passkey_ceremony_secs: u32,
    /// Test mode: mount the `/__test/` API for end-to-end suites (the web layer's `test_mode`).
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
            touch_interval_secs: None,
            confirm_window_secs: 10 * 60,
            tombstone_grace_secs: 60 * 60,
            idle_warning_secs: None,
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
                .map_or(1, |cores| u32::try_from(cores.get()).unwrap_or(u32::MAX)),
            hashing_admission_ms: 1000,
            hashing_cgroup: None,
            seed_demo_users: false,
            hsts: false,
            access_token_secs: None,
            refresh_token_secs: 7 * 24 * 60 * 60,
            throttle_account_failures: 5,
            throttle_ip_failures: 50,
            throttle_session_failures: 5,
            throttle_ip_sign_ups: 10,
            throttle_window_secs: 15 * 60,
            bound_cookie_secs: None,
            passkey_origin: None,
            passkey_rp_id: None,
            passkey_ceremony_secs: 5 * 60,
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

    /// The shorter of the two idle timeouts: the one the dependent defaults must fit.
    fn shortest_idle_timeout_secs(&self) -> u32 {
        self.idle_timeout_secs.min(self.admin_idle_timeout_secs)
    }

    pub fn touch_interval_secs(&self) -> u32 {
        self.touch_interval_secs.unwrap_or_else(|| {
            DEFAULT_TOUCH_INTERVAL_SECS.min(self.shortest_idle_timeout_secs() / 10)
        })
    }

    pub fn touch_interval(&self) -> Duration {
        Duration::seconds(self.touch_interval_secs().into())
    }

    pub fn idle_warning_secs(&self) -> u32 {
        self.idle_warning_secs
            .unwrap_or_else(|| DEFAULT_IDLE_WARNING_SECS.min(self.shortest_idle_timeout_secs() / 2))
    }

    pub fn passkey_ceremony(&self) -> Duration {
        Duration::seconds(self.passkey_ceremony_secs.into())
    }

    pub fn confirm_window(&self) -> Duration {
        Duration::seconds(self.confirm_window_secs.into())
    }

    pub fn tombstone_grace(&self) -> Duration {
        Duration::seconds(self.tombstone_grace_secs.into())
    }

    pub fn access_token_secs(&self) -> u32 {
        self.access_token_secs
            .unwrap_or_else(|| DEFAULT_ACCESS_TOKEN_SECS.min(self.refresh_token_secs))
    }

    pub fn access_token_lifetime(&self) -> Duration {
        Duration::seconds(self.access_token_secs().into())
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

    pub fn bound_cookie_secs(&self) -> u32 {
        self.bound_cookie_secs
            .unwrap_or_else(|| DEFAULT_BOUND_COOKIE_SECS.min(self.absolute_timeout_secs))
    }

    pub fn bound_cookie_lifetime(&self) -> Duration {
        Duration::seconds(self.bound_cookie_secs().into())
    }

    /// How many hashing threads run, and where (`users::hashing`).
    pub fn hashing_settings(&self) -> HashingSettings {
        HashingSettings {
            threads: self.max_concurrent_hashes as usize,
            cgroup: self.hashing_cgroup.clone(),
        }
    }

    /// How long the work admitted at once may take the hashing threads (`users::hashing`).
    pub fn hashing_admission(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.hashing_admission_ms.into())
    }

    /// Each numeric setting with the values it accepts. The upper ends keep every time the app
    /// computes inside the calendar and every count inside PostgreSQL's integers; none is a
    /// policy an operator would want past them. A setting whose default follows another comes
    /// after it, so an out-of-range value is reported by its own name.
    fn numeric_settings(&self) -> Vec<(&'static str, u32, RangeInclusive<u32>)> {
        vec![
            ("idle_timeout_secs", self.idle_timeout_secs, 1..=MONTH),
            (
                "absolute_timeout_secs",
                self.absolute_timeout_secs,
                1..=YEAR,
            ),
            (
                "admin_idle_timeout_secs",
                self.admin_idle_timeout_secs,
                1..=MONTH,
            ),
            (
                "admin_absolute_timeout_secs",
                self.admin_absolute_timeout_secs,
                1..=YEAR,
            ),
            ("touch_interval_secs", self.touch_interval_secs(), 0..=DAY),
            ("confirm_window_secs", self.confirm_window_secs, 1..=DAY),
            // Minutes at most: the state is a challenge waiting for its answer (WebAuthn's own
            // recommended timeout is five).
            (
                "passkey_ceremony_secs",
                self.passkey_ceremony_secs,
                30..=15 * 60,
            ),
            ("tombstone_grace_secs", self.tombstone_grace_secs, 0..=MONTH),
            ("idle_warning_secs", self.idle_warning_secs(), 0..=DAY),
            (
                "max_sessions_per_user",
                self.max_sessions_per_user,
                1..=MILLION,
            ),
            (
                "max_api_families_per_user",
                self.max_api_families_per_user,
                1..=MILLION,
            ),
            (
                "network_alternations_max",
                self.network_alternations_max,
                1..=MILLION,
            ),
            (
                "network_alternation_window_secs",
                self.network_alternation_window_secs,
                1..=DAY,
            ),
            (
                "max_refreshes_per_access_lifetime",
                self.max_refreshes_per_access_lifetime,
                1..=MILLION,
            ),
            (
                "suspicious_sign_in_failures",
                self.suspicious_sign_in_failures,
                1..=MILLION,
            ),
            (
                "suspicious_sign_in_window_secs",
                self.suspicious_sign_in_window_secs,
                1..=MONTH,
            ),
            ("reaper_interval_secs", self.reaper_interval_secs, 1..=DAY),
            ("reaper_batch_size", self.reaper_batch_size, 1..=100_000),
            ("event_retention_days", self.event_retention_days, 1..=3650),
            (
                "address_retention_days",
                self.address_retention_days,
                1..=3650,
            ),
            ("max_concurrent_hashes", self.max_concurrent_hashes, 1..=256),
            (
                "hashing_admission_ms",
                self.hashing_admission_ms,
                1..=600_000,
            ),
            ("refresh_token_secs", self.refresh_token_secs, 1..=YEAR),
            ("access_token_secs", self.access_token_secs(), 1..=DAY),
            (
                "throttle_account_failures",
                self.throttle_account_failures,
                1..=MILLION,
            ),
            (
                "throttle_ip_failures",
                self.throttle_ip_failures,
                1..=MILLION,
            ),
            (
                "throttle_session_failures",
                self.throttle_session_failures,
                1..=MILLION,
            ),
            (
                "throttle_ip_sign_ups",
                self.throttle_ip_sign_ups,
                1..=MILLION,
            ),
            ("throttle_window_secs", self.throttle_window_secs, 1..=DAY),
            ("bound_cookie_secs", self.bound_cookie_secs(), 1..=DAY),
        ]
    }

    /// Rejects settings that would make the design's guarantees false, or that the arithmetic
    /// on times and counts could not hold. Every message names the setting and what it accepts.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value, range) in self.numeric_settings() {
            if !range.contains(&value) {
                return Err(format!(
                    "{name} = {value} is out of range: it must be between {} and {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        let shortest_idle = self.shortest_idle_timeout_secs();
        if self.touch_interval_secs() >= shortest_idle {
            return Err(format!(
                "touch_interval_secs = {} must be shorter than the shortest idle timeout ({shortest_idle} s: idle_timeout_secs, admin_idle_timeout_secs)",
                self.touch_interval_secs()
            ));
        }
        if self.access_token_secs() > self.refresh_token_secs {
            return Err(format!(
                "access_token_secs = {} must be at most refresh_token_secs ({})",
                self.access_token_secs(),
                self.refresh_token_secs
            ));
        }
        if self.bound_cookie_secs() > self.absolute_timeout_secs {
            return Err(format!(
                "bound_cookie_secs = {} must be at most absolute_timeout_secs ({})",
                self.bound_cookie_secs(),
                self.absolute_timeout_secs
            ));
        }
        if self
            .hashing_cgroup
            .as_ref()
            .is_some_and(|dir| !dir.is_absolute())
        {
            return Err("hashing_cgroup must be an absolute path".into());
        }
        if !self.cookie_name.starts_with("__Host-") {
            return Err(
                "cookie_name must keep the __Host- prefix (no Domain, Secure, Path=/)".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut SessionConfig)) -> SessionConfig {
        let mut config = SessionConfig::default();
        change(&mut config);
        config
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(SessionConfig::default().validate(), Ok(()));
    }

    /// A person who shortens one setting never has to find the others that depended on it.
    #[test]
    fn a_shorter_timeout_alone_brings_the_defaults_that_depend_on_it_along() {
        let short_session = with(|c| c.absolute_timeout_secs = 4);
        assert_eq!(short_session.validate(), Ok(()));
        assert_eq!(short_session.bound_cookie_secs(), 4);

        let short_idle = with(|c| c.idle_timeout_secs = 30);
        assert_eq!(short_idle.validate(), Ok(()));
        assert_eq!(short_idle.touch_interval_secs(), 3);
        assert_eq!(short_idle.idle_warning_secs(), 15);

        let short_admin_idle = with(|c| c.admin_idle_timeout_secs = 5);
        assert_eq!(short_admin_idle.validate(), Ok(()));
        assert_eq!(short_admin_idle.touch_interval_secs(), 0);

        let short_family = with(|c| c.refresh_token_secs = 600);
        assert_eq!(short_family.validate(), Ok(()));
        assert_eq!(short_family.access_token_secs(), 600);

        let defaults = SessionConfig::default();
        assert_eq!(
            (
                defaults.bound_cookie_secs(),
                defaults.touch_interval_secs(),
                defaults.idle_warning_secs(),
                defaults.access_token_secs()
            ),
            (600, 60, 120, 900)
        );
    }

    #[test]
    fn a_dependent_setting_given_explicitly_must_still_fit() {
        let error = with(|c| {
            c.absolute_timeout_secs = 4;
            c.bound_cookie_secs = Some(600);
        })
        .validate()
        .unwrap_err();
        assert_eq!(
            error,
            "bound_cookie_secs = 600 must be at most absolute_timeout_secs (4)"
        );
        let error = with(|c| {
            c.idle_timeout_secs = 30;
            c.touch_interval_secs = Some(60);
        })
        .validate()
        .unwrap_err();
        assert!(
            error.starts_with("touch_interval_secs = 60 must be shorter"),
            "{error}"
        );
        let error = with(|c| {
            c.refresh_token_secs = 600;
            c.access_token_secs = Some(900);
        })
        .validate()
        .unwrap_err();
        assert_eq!(
            error,
            "access_token_secs = 900 must be at most refresh_token_secs (600)"
        );
    }

    #[test]
    fn a_number_out_of_range_is_refused_by_name() {
        let error = with(|c| c.event_retention_days = u32::MAX)
            .validate()
            .unwrap_err();
        assert_eq!(
            error,
            "event_retention_days = 4294967295 is out of range: it must be between 1 and 3650"
        );
        let error = with(|c| c.reaper_interval_secs = 0).validate().unwrap_err();
        assert_eq!(
            error,
            "reaper_interval_secs = 0 is out of range: it must be between 1 and 86400"
        );
    }

    /// Every setting at either end of its range, one at a time: the ranges hold what they say.
    #[test]
    fn every_setting_accepts_both_ends_of_its_range_and_refuses_one_past_them() {
        for (name, _, range) in SessionConfig::default().numeric_settings() {
            let (low, high) = (*range.start(), *range.end());
            // Each end alone may still break a relation to another setting (a touch interval
            // of a day against a 30-minute idle timeout), but never its own range.
            for value in [low, high] {
                let config = at(name, value);
                if let Err(error) = config.validate() {
                    assert!(
                        !error.contains("out of range"),
                        "{name} = {value} is in its range, but: {error}"
                    );
                }
            }
            if let Some(below) = low.checked_sub(1) {
                let error = at(name, below).validate().unwrap_err();
                assert!(error.starts_with(name), "{name} = {below}: {error}");
            }
            if high < u32::MAX {
                let error = at(name, high + 1).validate().unwrap_err();
                assert!(error.starts_with(name), "{name} = {}: {error}", high + 1);
            }
        }
    }

    /// The default configuration with one numeric setting replaced by name.
    fn at(name: &str, value: u32) -> SessionConfig {
        figment::Figment::new()
            .merge((name, value))
            .extract()
            .expect("a numeric setting")
    }
}
