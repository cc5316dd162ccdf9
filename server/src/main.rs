//! The `nudge` command line.
fn main() {}
