//! A `nudge serve` child process for the benchmarks that measure the real
//! server (`benches/http.rs`, the push part of `peers`): the binary brought up
//! to date by cargo, a free loopback port, the start awaited, SIGTERM on drop.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The `nudge` binary of the profile this benchmark was built in
/// (`target/release/nudge`), brought up to date by cargo first (a no-op when
/// fresh, so a server change is never measured stale), or the one
/// `NUDGE_BINARY` names (CI passes the test build's).
pub fn nudge_binary() -> Result<PathBuf, String> {
    if let Some(given) = std::env::var_os("NUDGE_BINARY") {
        return Ok(PathBuf::from(given));
    }
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    // A bench runs from `target/<profile>/deps`, a binary from `target/<profile>`.
    let mut profile_dir = exe.parent().ok_or_else(|| format!("{} has no folder", exe.display()))?;
    if profile_dir.file_name() == Some(OsStr::new("deps")) {
        profile_dir = profile_dir.parent().unwrap_or(profile_dir);
    }
    let binary = profile_dir.join("nudge");
    let target = profile_dir.parent().ok_or_else(|| format!("{} has no folder", exe.display()))?;
    eprintln!("bringing {} up to date", binary.display());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "-q", "-p", "nudge-server", "--bin", "nudge", "--manifest-path"]);
    build.arg(manifest).arg("--target-dir").arg(target);
    if profile_dir.file_name().is_some_and(|name| name != "debug") {
        build.arg("--release");
    }
    // `cargo run`/`cargo bench` give this process its package's variables; a
    // build that saw them would redo build scripts that watch the environment.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        let package_variable = name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || ["CARGO_CRATE_NAME", "CARGO_BIN_NAME", "CARGO_PRIMARY_PACKAGE"]
                .contains(&name.as_str());
        if package_variable {
            build.env_remove(&name);
        }
    }
    let status = build.status().map_err(|e| format!("could not run cargo: {e}"))?;
    if !status.success() || !binary.exists() {
        return Err(format!("building {} failed ({status})", binary.display()));
    }
    Ok(binary)
}

/// A free port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running `nudge serve`; stopped with SIGTERM (a clean shutdown) when dropped.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
}

impl ServeProcess {
    /// Starts `nudge serve --listen 127.0.0.1:<free port>` with `args` and
    /// `envs`, and waits until it accepts connections.
    pub fn start(args: &[&OsStr], envs: &[(&str, &str)]) -> Result<ServeProcess, String> {
        let binary = nudge_binary()?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let child = Command::new(&binary)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
        let mut server = ServeProcess { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("nudge serve exited at start ({status})"));
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "nudge serve did not listen on {port} within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}
