//! The push part of the peer benchmark (being built).

use crate::context::{Context, Part, Result};
use crate::fail;

/// Runs the push comparison.
pub fn run(_ctx: &Context) -> Result<Part> {
    Err(fail!("the push comparison is not built yet"))
}
