//! Rebuilds core when a migration changes: `MIGRATOR` embeds the folder at compile time, and
//! cargo does not watch files outside the crate on its own.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
