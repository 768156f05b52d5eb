//! `sqlx::migrate!` embeds `migrations/` when the crate compiles: rebuild when they change,
//! or a test or binary keeps the SQL of an earlier build.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
