//! The browser files the server hands out, compiled into the binary:
//! `/sdk.js` (the SDK pages load), `/sw.js` (the service worker that shows
//! pushes and reports views and clicks) and `/` (the demo page, with the write
//! key filled in where it says `{{WRITE_KEY}}`).

/// The browser SDK.
pub const SDK_JS: &str = include_str!("../../assets/sdk.js");
/// The service worker.
pub const SW_JS: &str = include_str!("../../assets/sw.js");
/// The demo landing page.
pub const INDEX_HTML: &str = include_str!("../../assets/index.html");
