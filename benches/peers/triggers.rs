//! The triggers part of the peer benchmark (being built).

use crate::context::{Context, Part, Result};
use crate::fail;

/// Runs the triggers comparison.
pub fn run(_ctx: &Context) -> Result<Part> {
    Err(fail!("the triggers comparison is not built yet"))
}
