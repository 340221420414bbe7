// `sqlx::migrate!` embeds migrations/ at compile time; rebuild when a file is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
