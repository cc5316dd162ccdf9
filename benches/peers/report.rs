//! Writes the peer benchmark's report (being built).

use crate::context::{Context, Part, Result};

/// Writes the parts' sections and the chart.
pub fn write(_ctx: &Context, parts: &[Part]) -> Result<()> {
    for part in parts {
        println!("{}", part.markdown);
    }
    Ok(())
}
