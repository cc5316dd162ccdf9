//! What the load harness watches while wrk runs: a `/healthz` probe on its
//! own fresh connection every [`PROBE_INTERVAL`] (latency, or the failure),
//! and the server's resident memory (`VmRSS`, `VmHWM` in `/proc/<pid>/status`)
//! every [`RSS_INTERVAL`]; each sample is tagged with the phase running.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Time between two health probes.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// A probe with no complete answer within this fails ("health stopped
/// answering"): a liveness bound, not a speed target; it spans a dropped SYN's
/// retries (1 s, then 3 s) on a saturated listen queue.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time between two memory samples.
pub const RSS_INTERVAL: Duration = Duration::from_millis(100);

/// One health probe: the phase, and its latency or why it failed.
pub type Probe = (usize, Result<Duration, String>);

/// One memory sample: the phase, `VmRSS` and `VmHWM` in KiB.
pub type RssSample = (usize, u64, u64);

/// The watchers, running until [`Watch::stop`].
pub struct Watch {
    /// The phase running now (index into the harness's list).
    pub phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    probes: JoinHandle<Vec<Probe>>,
    rss: JoinHandle<Vec<RssSample>>,
}

fn probe_once(address: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&address, PROBE_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: load\r\nconnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("read: {e}"))?;
    let took = started.elapsed();
    if took > PROBE_TIMEOUT {
        return Err(format!("answered after {took:?}"));
    }
    if !answer.starts_with(b"HTTP/1.1 200") {
        let head = String::from_utf8_lossy(&answer[..answer.len().min(80)]).into_owned();
        return Err(format!("answered {head:?}"));
    }
    Ok(took)
}

/// `VmRSS` and `VmHWM` of `pid`, KiB.
pub fn rss_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

impl Watch {
    /// Starts probing `port` and sampling the memory of `pid`.
    pub fn start(port: u16, pid: u32) -> Watch {
        let phase = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let (probe_phase, probe_stop) = (phase.clone(), stop.clone());
        let probes = std::thread::spawn(move || {
            let mut probes = Vec::new();
            while !probe_stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                probes.push((probe_phase.load(Ordering::Relaxed), probe_once(address)));
                std::thread::sleep(PROBE_INTERVAL.saturating_sub(started.elapsed()));
            }
            probes
        });
        let (rss_phase, rss_stop) = (phase.clone(), stop.clone());
        let rss = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !rss_stop.load(Ordering::Relaxed) {
                if let Some((rss, hwm)) = rss_of(pid) {
                    samples.push((rss_phase.load(Ordering::Relaxed), rss, hwm));
                }
                std::thread::sleep(RSS_INTERVAL);
            }
            samples
        });
        Watch { phase, stop, probes, rss }
    }

    /// Stops the watchers and returns what they saw.
    pub fn stop(self) -> (Vec<Probe>, Vec<RssSample>) {
        self.stop.store(true, Ordering::Relaxed);
        let probes = self.probes.join().unwrap_or_default();
        let rss = self.rss.join().unwrap_or_default();
        (probes, rss)
    }
}

/// One request on a fresh connection (`Connection: close`): the status and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&address, PROBE_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: load\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("read: {e}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {answer:?}"))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}
