//! The SSRF guard: which URLs the outbound client may reach. Push endpoints
//! come from browsers (so from anyone) and webhook URLs from admins, and the
//! server must not be turned against its own network.
//!
//! - [`parse`] reads a URL once, with the `url` crate (WHATWG rules); the
//!   sender posts to exactly what was checked, so no second parser can read
//!   the host differently.
//! - [`Guard::check`]: `https` only, a host, no user name or password, no
//!   literal private, loopback or link-local address ([`is_private`]); a push
//!   endpoint also needs the default port and a host on the push-service
//!   allowlist ([`ALLOWED_PUSH_HOSTS`], [`host_allowed`]).
//! - [`GuardedResolver`]: every host name is resolved by a resolver that drops
//!   private addresses, so a name cannot point the server inward either.
//!
//! `--allow-insecure-push` (tests on loopback only) lifts all of it but the
//! shape of the URL. What a push service's answer means is in
//! `webpush/response.rs`; the client that uses this guard is `sender.rs`.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use url::{Host, Url};

use crate::error::{Error, Result};

/// Host suffixes of the push services endpoints may point to (an SSRF guard:
/// endpoints are URLs supplied by browsers, so by anyone).
pub const ALLOWED_PUSH_HOSTS: &[&str] =
    &["fcm.googleapis.com", "push.services.mozilla.com", "push.apple.com", "notify.windows.com"];

/// What a URL is for: push endpoints are held to more rules than webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Web Push subscription endpoint: also the default port and an allowed host.
    Push,
    /// A campaign's webhook.
    Webhook,
}

/// Parses a URL the sender may be asked to reach; `field` names it in the error.
pub fn parse(field: &str, text: &str) -> Result<Url> {
    Url::parse(text).map_err(|e| Error::invalid(field, format!("not a URL: {e}")))
}

/// The guard of one sender: strict, or (`--allow-insecure-push`) lifted.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    allow_insecure: bool,
}

impl Guard {
    /// A guard; `allow_insecure` permits `http://`, any host and private
    /// addresses (tests only).
    pub fn new(allow_insecure: bool) -> Guard {
        Guard { allow_insecure }
    }

    /// Checks a parsed URL (see the module doc); `field` names it in the error.
    pub fn check(&self, field: &str, url: &Url, target: Target) -> Result<()> {
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(Error::invalid(field, "expected an absolute https:// URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid(field, "a user name or password in the URL is refused"));
        }
        if self.allow_insecure {
            return Ok(());
        }
        if url.scheme() != "https" {
            return Err(Error::invalid(field, "only https:// URLs are allowed"));
        }
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) | None => None,
        };
        if literal.is_some_and(is_private) {
            return Err(Error::invalid(
                field,
                "private, loopback and link-local addresses are refused",
            ));
        }
        if target == Target::Push {
            // `port()` is `None` for the scheme's default, 443.
            if url.port().is_some() {
                return Err(Error::invalid(
                    field,
                    "push services listen on port 443; other ports are refused",
                ));
            }
            let host = url.host_str().unwrap_or_default();
            if literal.is_some() || !host_allowed(host) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{host} is not a known push service (see docs/http-api.md for the \
                         allowlist)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// [`parse`] then [`Guard::check`].
    pub fn checked(&self, field: &str, text: &str, target: Target) -> Result<Url> {
        let url = parse(field, text)?;
        self.check(field, &url, target)?;
        Ok(url)
    }

    /// The resolver the sender's connector uses.
    pub fn resolver(&self) -> GuardedResolver {
        GuardedResolver { allow_private: self.allow_insecure }
    }
}

/// Whether an address is one the sender must not reach without `--allow-insecure-push`.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // 100.64.0.0/10
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
        }
    }
}

/// A DNS resolver that drops private addresses (unless allowed), so a push
/// endpoint cannot point the server at its own network by name.
#[derive(Clone)]
pub struct GuardedResolver {
    allow_private: bool,
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} resolves to no public address"),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

/// `host` lower-cased without one trailing dot, if it is a plain DNS name
/// (letters, digits, hyphens, non-empty labels; no port, no user).
pub(crate) fn normalized_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let plain = !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && host.split('.').all(|label| !label.is_empty());
    plain.then_some(host)
}

/// Whether `host` is `suffix` or a subdomain of it (label-wise: `xfcm.googleapis.com`
/// is not under `fcm.googleapis.com`).
pub(crate) fn under(host: &str, suffix: &str) -> bool {
    host == suffix
        || host.strip_suffix(suffix).is_some_and(|head| head.ends_with('.') && head.len() > 1)
}

/// Whether an endpoint host (the bare host, no port) is one of
/// [`ALLOWED_PUSH_HOSTS`] or a subdomain of one.
pub fn host_allowed(host: &str) -> bool {
    host_allowed_in(host, ALLOWED_PUSH_HOSTS)
}

/// [`host_allowed`] against another list of suffixes (the built-in list plus
/// configured ones, e.g. a self-hosted autopush).
pub fn host_allowed_in<S: AsRef<str>>(host: &str, suffixes: &[S]) -> bool {
    let Some(host) = normalized_host(host) else { return false };
    suffixes.iter().filter_map(|suffix| normalized_host(suffix.as_ref())).any(|s| under(&host, &s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().expect("an address")), "{private}");
        }
        for public in ["142.250.74.106", "2a00:1450:4001::200e", "8.8.8.8"] {
            assert!(!is_private(public.parse().expect("an address")), "{public}");
        }
    }

    #[test]
    fn allowed_hosts() {
        for good in [
            "fcm.googleapis.com",
            "Fcm.GoogleApis.com",
            "fcm.googleapis.com.",
            "updates.push.services.mozilla.com",
            "web.push.apple.com",
            "api.push.apple.com",
            "wns2-par02p.notify.windows.com",
        ] {
            assert!(host_allowed(good), "{good}");
        }
        for bad in [
            "xfcm.googleapis.com",
            "evilfcm.googleapis.com.attacker",
            "fcm.googleapis.com.attacker.net",
            "googleapis.com",
            "apple.com",
            "push.apple.com.evil.io",
            "fcm.googleapis.com:443",
            "user@fcm.googleapis.com",
            ".fcm.googleapis.com",
            "a..fcm.googleapis.com",
            "127.0.0.1",
            "localhost",
            "",
        ] {
            assert!(!host_allowed(bad), "{bad}");
        }
        assert!(host_allowed_in("push.example.net", &["push.example.net"]));
        assert!(host_allowed_in("eu.push.example.net", &[String::from("push.example.net")]));
        assert!(!host_allowed_in("fcm.googleapis.com", &["push.example.net"]));
    }

    /// The field an error names, or `None` when the URL passes.
    fn refusal(guard: Guard, url: &str, target: Target) -> Option<String> {
        match guard.checked("f", url, target) {
            Ok(_) => None,
            Err(Error::Invalid(error)) => {
                assert_eq!(error.field, "f", "{url}");
                Some(error.reason)
            }
            Err(other) => panic!("{url}: {other}"),
        }
    }

    #[test]
    fn push_endpoints_and_webhooks_are_checked_once_parsed() {
        let strict = Guard::new(false);
        for url in [
            "https://fcm.googleapis.com/fcm/send/x",
            "https://fcm.googleapis.com:443/fcm/send/x",
            "https://updates.push.services.mozilla.com/wpush/v2/x",
            "HTTPS://Web.Push.Apple.COM/QGx",
        ] {
            assert_eq!(refusal(strict, url, Target::Push), None, "{url}");
        }
        for (url, why) in [
            ("http://fcm.googleapis.com/fcm/send/x", "only https"),
            ("https://127.0.0.1/push", "private"),
            ("https://127.1/push", "private"),
            ("https://0x7f000001/push", "private"),
            ("https://169.254.169.254/latest", "private"),
            ("https://[::1]/push", "private"),
            ("https://[fe80::1]/push", "private"),
            ("https://10.0.0.5/push", "private"),
            ("https://evil.example/push", "not a known push service"),
            ("https://142.250.74.106/push", "not a known push service"),
            ("https://user@fcm.googleapis.com/fcm/send/x", "user name"),
            ("https://u:p@fcm.googleapis.com/fcm/send/x", "user name"),
            ("https://fcm.googleapis.com:8443/fcm/send/x", "port 443"),
            ("ftp://fcm.googleapis.com/fcm/send/x", "absolute https"),
            ("mailto:a@fcm.googleapis.com", "absolute https"),
            ("fcm.googleapis.com/fcm/send/x", "not a URL"),
            ("https://", "not a URL"),
            ("", "not a URL"),
        ] {
            let reason = refusal(strict, url, Target::Push).unwrap_or_else(|| panic!("{url}"));
            assert!(reason.contains(why), "{url}: {reason}");
        }
        // Webhooks may be on any public host and port.
        assert_eq!(refusal(strict, "https://hooks.example:8443/in", Target::Webhook), None);
        for url in ["http://hooks.example/in", "https://127.0.0.1/in", "https://[::1]:8443/in"] {
            assert!(refusal(strict, url, Target::Webhook).is_some(), "{url}");
        }
        // --allow-insecure-push: only the shape of the URL is checked.
        let lifted = Guard::new(true);
        assert_eq!(refusal(lifted, "http://127.0.0.1:9000/push/1", Target::Push), None);
        assert!(refusal(lifted, "http://u@127.0.0.1/push", Target::Push).is_some());
        assert!(refusal(lifted, "ftp://127.0.0.1/push", Target::Push).is_some());
    }
}
