// The `query!` macros read their offline data from .sqlx/ (scripts/sqlx-prepare writes it):
// rebuild when it changes, so the code is checked against the data it will be built with.
fn main() {
    println!("cargo:rerun-if-changed=.sqlx");
}
