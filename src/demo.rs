//! Demo accounts for local runs: created at start in the debug profile, never in a release build.

use rocket::fairing::AdHoc;

use crate::clock::AppClock;
use crate::config::SessionConfig;
use crate::db::Db;
use crate::users::{self, Password, PasswordHasher, Role, Username};
use rocket_db_pools::Database;

/// (username, password, role). Printed at start so a person can sign in at once.
const DEMO_USERS: [(&str, &str, Role); 2] = [
    ("admin", "demo-admin-password", Role::Admin),
    ("alice", "demo-alice-password", Role::User),
];

pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Demo users", |rocket| async move {
        let wanted = rocket
            .state::<SessionConfig>()
            .is_some_and(|config| config.seed_demo_users);
        // Release builds never seed, whatever the configuration says.
        if !wanted || !cfg!(debug_assertions) {
            return Ok(rocket);
        }
        let (Some(db), Some(hasher), Some(clock)) = (
            Db::fetch(&rocket),
            rocket.state::<PasswordHasher>(),
            rocket.state::<AppClock>(),
        ) else {
            return Err(rocket);
        };
        for (name, password, role) in DEMO_USERS {
            let username = Username::parse(name).expect("demo usernames satisfy the rules");
            let password =
                Password::parse(password.to_owned()).expect("demo passwords satisfy the rules");
            let seeded = async {
                let mut conn = db.pool().acquire().await.map_err(|e| e.to_string())?;
                if users::store::find_credentials(&mut conn, &username)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some()
                {
                    return Ok(None);
                }
                drop(conn);
                let hash = hasher.hash(&password).await.map_err(|e| e.to_string())?;
                let mut conn = db.pool().acquire().await.map_err(|e| e.to_string())?;
                users::store::create(&mut conn, &username, &hash, role, clock.now())
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(error) = seeded.await {
                rocket::error!("could not create demo user {name}: {error}");
                return Err(rocket);
            }
        }
        println!("\nDemo accounts (debug profile only):");
        for (name, password, role) in DEMO_USERS {
            println!("  {name:<6} / {password:<22} ({})", role.code());
        }
        println!();
        Ok(rocket)
    })
}
