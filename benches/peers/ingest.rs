//! The ingest part of the peer benchmark (being built).

use crate::context::{Context, Part, Result};
use crate::fail;

/// Runs the ingest comparison.
pub fn run(_ctx: &Context) -> Result<Part> {
    Err(fail!("the ingest comparison is not built yet"))
}
