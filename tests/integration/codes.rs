//! The enums stored as text codes (`codes::text_codes!`) agree with the database: each column's
//! CHECK constraint admits exactly its enum's codes, and every variant survives a write and a read.

use std::collections::BTreeSet;

use secure_sessions::client::ClientInfo;
use secure_sessions::events::{self, EventKind, NewEvent};
use secure_sessions::passkeys::store::CeremonyKind;
use secure_sessions::session::fingerprint::Fingerprint;
use secure_sessions::session::token::SessionToken;
use secure_sessions::session::{Aal, Reason, SessionKind, store};
use secure_sessions::throttle::Scope;
use secure_sessions::users::Role;

use crate::support::TestApp;

/// The codes the CHECK constraint on `table.column` admits, read from the catalog: the quoted
/// literals of the one CHECK that involves that column alone (`column IN ('a', 'b')` reads back
/// as `CHECK ((column = ANY (ARRAY['a'::text, 'b'::text])))`).
async fn admitted_codes(app: &TestApp, table: &str, column: &str) -> BTreeSet<String> {
    let definitions: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.conrelid = $1::regclass AND c.contype = 'c' AND cardinality(c.conkey) = 1
           AND a.attname = $2",
    )
    .bind(table)
    .bind(column)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        definitions.len(),
        1,
        "{table}.{column}: one CHECK constraint of its own, got {definitions:?}"
    );
    definitions[0]
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn codes<T: Copy>(all: &[T], code: fn(T) -> &'static str) -> BTreeSet<String> {
    all.iter().map(|&value| code(value).to_owned()).collect()
}

#[rocket::async_test]
async fn every_code_the_database_admits_has_a_variant_and_every_variant_is_admitted() {
    let app = TestApp::new().await;
    let columns = [
        (
            "sessions",
            "kind",
            codes(SessionKind::ALL, SessionKind::code),
        ),
        (
            "sessions",
            "revoke_reason",
            codes(Reason::ALL, Reason::code),
        ),
        ("sessions", "aal", codes(Aal::ALL, Aal::code)),
        ("users", "role", codes(Role::ALL, Role::code)),
        (
            "passkey_ceremonies",
            "kind",
            codes(CeremonyKind::ALL, CeremonyKind::code),
        ),
        (
            "security_events",
            "kind",
            codes(EventKind::ALL, EventKind::code),
        ),
        ("sign_in_failures", "scope", codes(Scope::ALL, Scope::code)),
    ];
    for (table, column, variants) in columns {
        let admitted = admitted_codes(&app, table, column).await;
        let without_variant: Vec<_> = admitted.difference(&variants).collect();
        assert!(
            without_variant.is_empty(),
            "{table}.{column} admits codes no variant has: {without_variant:?}"
        );
        let refused: Vec<_> = variants.difference(&admitted).collect();
        assert!(
            refused.is_empty(),
            "{table}.{column} refuses the codes of variants: {refused:?}"
        );
    }
}

fn client() -> ClientInfo {
    ClientInfo {
        ip: "198.51.100.7".into(),
        user_agent: "codes test".into(),
        fingerprint: Fingerprint {
            bind: [0; 32],
            watch: [0; 32],
        },
    }
}

#[rocket::async_test]
async fn every_event_kind_is_written_and_read_back_as_itself() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = client();
    let mut conn = app.pool.acquire().await.unwrap();
    for &kind in EventKind::ALL {
        let event = NewEvent::new(user_id, kind, None, &client);
        events::record(&mut conn, event, app.clock_now())
            .await
            .unwrap();
    }
    let limit = i64::try_from(EventKind::ALL.len()).unwrap() + 1;
    let mut read: Vec<EventKind> = events::recent_for_user(&mut conn, user_id, limit)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.kind)
        .collect();
    // Newest first, and all written at the same moment: by id, newest first.
    read.reverse();
    assert_eq!(read, EventKind::ALL);
}

#[rocket::async_test]
async fn every_revoke_reason_is_written_and_read_back_as_itself() {
    let app = TestApp::new().await;
    let user_id = app.create_user("alice", Role::User).await;
    let client = client();
    let now = app.clock_now();
    let mut conn = app.pool.acquire().await.unwrap();
    for &reason in Reason::ALL {
        let public_id = store::insert(
            &mut conn,
            &store::NewSession {
                key: &SessionToken::generate().key(),
                user_id,
                kind: store::NewKind::Browser,
                now,
                expires_at: now + time::Duration::hours(1),
                fingerprint: &client.fingerprint,
                ip: &client.ip,
                user_agent: &client.user_agent,
                aal: Aal::Aal1,
            },
        )
        .await
        .unwrap();
        let ended = store::revoke_by_id(&mut conn, public_id, reason, now)
            .await
            .unwrap();
        assert_eq!(ended, Some(user_id));
        let record = store::find_by_public_id(&mut conn, public_id)
            .await
            .unwrap()
            .expect("the tombstone");
        assert_eq!(record.revoke_reason, Some(reason));
        assert_eq!(record.kind, SessionKind::Browser);
    }
}
