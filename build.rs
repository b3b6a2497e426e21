//! Rebuilds the binary when a migration changes: `sqlx::migrate!` embeds the migrations at
//! compile time, and cargo does not otherwise know it reads that directory.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
