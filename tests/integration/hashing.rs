//! Password hashing runs on threads of the app's own (`users::hashing`), behind a bounded queue.
//! These tests use the real hasher, real threads and, where the app is involved, real sign-ins.

use std::pin::pin;
use std::time::Duration;

use rocket::futures::FutureExt;
use rocket::futures::future::join_all;
use rocket::http::Status;
use rocket::tokio::time::sleep;
use secure_sessions::users::hashing::HashingCounts;
use secure_sessions::users::{Password, PasswordHasher, Role};

use crate::support::binary::{RunningApp, threads_named, with_sessions};
use crate::support::http::{CHROME_LINUX, Device, Reply};
use crate::support::raw::RawRequest;
use crate::support::{PASSWORD, TestApp, password_hasher};

/// The binary hashes on exactly `max_concurrent_hashes` threads of its own process, and a
/// sign-in through the form is answered by them.
#[rocket::async_test]
async fn the_app_hashes_on_as_many_threads_of_its_own_as_set() {
    let app = TestApp::new().await;
    app.create_user("alice", Role::User).await;
    let binary = RunningApp::start(with_sessions(&app, "{max_concurrent_hashes=3}")).await;
    assert_eq!(threads_named(binary.pid(), "argon2-").len(), 3);

    let chrome = |request: RawRequest| request.header(format!("User-Agent: {CHROME_LINUX}"));
    let form = chrome(RawRequest::get("/login")).send(binary.port).await;
    let signed_in = chrome(RawRequest::post("/login"))
        .header(format!(
            "Cookie: __Host-csrf={}",
            form.cookie("__Host-csrf")
        ))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &form.html().csrf_token()),
        ])
        .send(binary.port)
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.head);
    assert!(!signed_in.cookie("__Host-sid").is_empty());
}

#[rocket::async_test]
async fn a_hash_verifies_only_its_own_password_whatever_bytes_it_holds() {
    let hasher = password_hasher(2);
    for password in ["violet tractor mango", "a line\nbreak, a \u{0} and ✓ äöü"] {
        let right = Password::parse(password.into()).unwrap();
        let wrong = Password::parse(format!("{password}s")).unwrap();
        let hash = hasher.hash(&right).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify(&right, Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(&wrong, Some(hash)).await.unwrap());
        // An unknown user: the dummy hash is verified, and never matches.
        assert!(!hasher.verify(&right, None).await.unwrap());
    }
}

/// A damaged stored hash (not a PHC string, however long) fails its own check only.
#[rocket::async_test]
async fn a_damaged_stored_hash_is_an_error_and_the_hasher_goes_on() {
    let hasher = password_hasher(1);
    let password = Password::parse("violet tractor mango".into()).unwrap();
    for damaged in ["not a phc string".to_owned(), "$".repeat(100_000)] {
        assert!(hasher.verify(&password, Some(damaged)).await.is_err());
    }
    let hash = hasher.hash(&password).await.unwrap();
    assert!(hasher.verify(&password, Some(hash)).await.unwrap());
}

/// A flood of sign-ins beyond what the hashing threads finish in a second (the default
/// `hashing_admission_ms`) gets 503 with `Retry-After` at once: each refused sign-in was never hashed, each admitted one was
/// hashed once, and the owner signs in right after.
#[rocket::async_test]
async fn a_sign_in_flood_beyond_what_the_hashers_finish_in_a_second_gets_503_with_retry_after_unhashed()
 {
    let app = TestApp::with(|figment| {
        figment
            .merge(("sessions.max_concurrent_hashes", 1))
            .merge(("sessions.hashing_admission_ms", 1000))
    })
    .await;
    app.create_user("alice", Role::User).await;
    let client = app.client().await;
    let hasher = client.rocket().state::<PasswordHasher>().unwrap();
    // Strangers on addresses of their own, so no throttle answers before the hasher does.
    let flood = 3 * hasher.capacity() + 10;
    let strangers: Vec<Device<'_>> = (0..flood)
        .map(|index| Device::with(&client, CHROME_LINUX, &format!("2001:db8::{index:x}")))
        .collect();
    let forms = join_all(strangers.iter().map(|stranger| stranger.get("/login"))).await;
    let names: Vec<String> = (0..flood).map(|index| format!("stranger{index}")).collect();
    let replies = join_all(strangers.iter().zip(&forms).zip(&names).map(
        |((stranger, form), name)| {
            let csrf = form.csrf_token();
            stranger.post_form(
                "/login",
                &[
                    ("username", name),
                    ("password", "a wrong password"),
                    ("csrf_token", &csrf),
                ],
            )
        },
    ))
    .await;

    let refused: Vec<&Reply> = replies
        .iter()
        .filter(|reply| reply.status == Status::ServiceUnavailable)
        .collect();
    let answered = replies
        .iter()
        .filter(|reply| reply.status == Status::Ok)
        .count();
    let statuses: Vec<u16> = replies.iter().map(|reply| reply.status.code).collect();
    assert_eq!(
        refused.len() + answered,
        flood,
        "only 200 and 503: {statuses:?}"
    );
    assert!(
        !refused.is_empty(),
        "{flood} sign-ins at once, none refused"
    );
    for reply in &refused {
        assert_eq!(
            reply.header("Retry-After"),
            Some("1"),
            "{:?}",
            reply.headers
        );
        assert!(reply.shows("try again in a moment"), "{}", reply.body);
    }
    let counts = hasher.counts();
    assert_eq!(
        counts,
        HashingCounts {
            hashed: answered as u64,
            refused: refused.len() as u64,
            abandoned: 0,
        }
    );

    let alice = Device::new(&client);
    assert_eq!(
        alice.sign_in("alice", PASSWORD).await.location(),
        "/account"
    );
}

/// A request whose caller went away while it was queued (the request's future was dropped: its
/// client gone, or its wait timed out) is dropped from the queue, never hashed.
#[rocket::async_test]
async fn work_nobody_waits_for_any_more_is_dropped_from_the_queue_unhashed() {
    let hasher = password_hasher(1);
    let password = Password::parse("violet tractor mango".into()).unwrap();
    // A stored hash asking for 40 passes holds the only hashing thread while the others queue.
    let slow = format!(
        "$argon2id$v=19$m=19456,t=40,p=1$c2FsdHNhbHRzYWx0${}",
        "A".repeat(43)
    );
    let mut holder = pin!(hasher.verify(&password, Some(slow)));
    assert!(holder.as_mut().now_or_never().is_none());
    for _ in 0..100 {
        if hasher.counts().hashed == 1 {
            break;
        }
        sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hasher.counts().hashed, 1, "the slow request was sent");
    for _ in 0..8 {
        // Queued, then dropped: the caller is gone.
        let mut gone = pin!(hasher.verify(&password, None));
        assert!(gone.as_mut().now_or_never().is_none());
    }
    assert!(!holder.await.unwrap());
    assert!(!hasher.verify(&password, None).await.unwrap());
    assert_eq!(
        hasher.counts(),
        HashingCounts {
            hashed: 2,
            refused: 0,
            abandoned: 8,
        }
    );
}
