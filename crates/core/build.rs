// `sqlx::migrate!` embeds ../../migrations at compile time; rebuild when a file is added or changed.
// The `query!` macros read their offline data from the workspace's .sqlx/ (scripts/sqlx-prepare
// writes it): rebuild when it changes too, so the code is checked against the data it is built with.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    println!("cargo:rerun-if-changed=../../.sqlx");
}
