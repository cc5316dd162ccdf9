//! The queries part of the peer benchmark (being built).

use crate::context::{Context, Part, Result};
use crate::fail;

/// Runs the queries comparison.
pub fn run(_ctx: &Context) -> Result<Part> {
    Err(fail!("the queries comparison is not built yet"))
}
