//! Failover on PostgreSQL's own replication: a primary and a synchronous streaming standby, the
//! app given both. The primary is killed under load and the standby promoted; the app, not
//! restarted, answers 503 meanwhile and serves again from the new primary, every session
//! committed before the kill intact.

use std::time::{Duration, Instant};

use rocket::tokio;

use crate::harness::*;
use crate::support::cluster::Cluster;
use crate::support::http::form_body;

/// How soon after the promotion every request must be served again.
const RECOVERY: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn primary_killed_and_standby_promoted_the_app_serves_from_the_new_primary() {
    let primary = Cluster::start_primary("standby1");
    let standby = Cluster::start_standby(&primary, "standby1");
    let urls = [primary.url("postgres"), standby.url("postgres")];
    let mut app = AppProcess::start(&AppSettings::new(&urls)).await;
    let pid = app.pid();
    let users = create_users(&urls[0]).await;
    // Committed on both servers before the kill (synchronous replication).
    let cookies = sign_in_all(app.port, &users).await;

    let port = app.port;
    let load = Load::start(&cookies, move |_, _| port);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = Instant::now();
    tokio::task::block_in_place(|| primary.kill());
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| standby.promote());
    let promoted = Instant::now();
    tokio::time::sleep(RECOVERY + Duration::from_secs(2)).await;
    let records = load.stop().await;

    assert_never_wrong(&records);
    assert!(
        count_between(&records, killed, promoted, &Outcome::Unavailable) > 0,
        "no 503 between the kill and the promotion"
    );
    assert_all_served_from(&records, promoted + RECOVERY, "5 s after the promotion");
    assert!(
        app.running() && app.pid() == pid,
        "the app was not restarted"
    );
    assert_sessions_work(app.port, &cookies, Duration::ZERO).await;
    let ended = standby.psql("SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL");
    assert_eq!(ended.trim(), "0", "the failover ended no session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_listed_first_is_passed_over_for_the_primary() {
    // After a failover the old primary comes back as a standby, still first in the list.
    let primary = Cluster::start_primary("standby1");
    let standby = Cluster::start_standby(&primary, "standby1");
    let urls = [standby.url("postgres"), primary.url("postgres")];
    let app = AppProcess::start(&AppSettings::new(&urls)).await;
    let users = create_users(&primary.url("postgres")).await;
    let cookies = sign_in_all(app.port, &users).await;

    let port = app.port;
    let load = Load::start(&cookies, move |_, _| port);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = load.stop().await;
    assert_all_served_from(
        &records,
        Instant::now() - Duration::from_secs(60),
        "with the standby first",
    );

    // Signing out writes to the primary; the next lookup, on the primary too, refuses it.
    let page = account(port, &cookies[0]).await.unwrap();
    let cookie = format!("Cookie: __Host-sid={}", cookies[0]);
    let form = "Content-Type: application/x-www-form-urlencoded".to_owned();
    let body = form_body(&[("csrf_token", &page.html().csrf_token())]);
    let signed_out = request(port, "POST", "/logout", &[cookie, form], &body).await;
    assert_eq!(signed_out.unwrap().status, 303);
    let after = account(port, &cookies[0]).await.unwrap();
    assert_eq!(after.status, 303, "the revoked session is refused at once");
}
