//! Installs what the peer benchmark needs and nothing it already has:
//! Debian's PostgreSQL and Redis servers (apt-get, as root), a Python virtual
//! environment with `requirements.txt` (duckdb, psycopg, redis), and Node's
//! `web-push` from `package.json`. Each install is skipped when its stamp
//! matches the wanted versions, so later runs start at once.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::context::{Result, run_captured};
use crate::fail;

/// Debian packages: the PostgreSQL server and client, and the Redis server.
const DEBIAN_PACKAGES: [&str; 3] = ["postgresql", "postgresql-client", "redis-server"];

/// Where the installed tools are.
#[derive(Debug)]
pub struct Tools {
    /// The virtual environment's interpreter.
    pub python: PathBuf,
    /// The folder whose `node_modules` holds `web-push`.
    pub node_dir: PathBuf,
}

/// Installs what is missing under `work`, from the manifests in `scripts`.
pub fn install(work: &Path, scripts: &Path) -> Result<Tools> {
    debian()?;
    let python = python_venv(work, scripts)?;
    let node_dir = node_modules(work, scripts)?;
    Ok(Tools { python, node_dir })
}

/// The directory holding PostgreSQL's server programs (`initdb`, `postgres`, `pg_ctl`).
pub fn postgres_bin() -> Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|_| fail!("PostgreSQL is not installed ({} is missing)", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().ok_or_else(|| fail!("no PostgreSQL server under {}", root.display()))
}

fn debian() -> Result<()> {
    let have_redis = Path::new("/usr/bin/redis-server").exists();
    if have_redis && postgres_bin().is_ok() {
        return Ok(());
    }
    if Command::new("apt-get").arg("--version").output().is_err() {
        return Err(fail!(
            "PostgreSQL or Redis is missing and apt-get is not available: install {}",
            DEBIAN_PACKAGES.join(" ")
        ));
    }
    eprintln!("peers: installing {} (apt-get)", DEBIAN_PACKAGES.join(", "));
    run_captured(
        Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    run_captured(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(DEBIAN_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    // The packages start their services where an init system runs; the harness
    // starts its own instances on private ports and data directories.
    for service in ["redis-server", "postgresql"] {
        let _ = Command::new("service").args([service, "stop"]).output();
    }
    Ok(())
}

fn stamp_matches(stamp: &Path, wanted: &str) -> bool {
    std::fs::read_to_string(stamp).is_ok_and(|s| s == wanted)
}

fn python_venv(work: &Path, scripts: &Path) -> Result<PathBuf> {
    let venv = work.join("venv");
    let python = venv.join("bin/python");
    let wanted = std::fs::read_to_string(scripts.join("requirements.txt"))?;
    let stamp = venv.join("nudge-requirements.txt");
    if python.exists() && stamp_matches(&stamp, &wanted) {
        return Ok(python);
    }
    eprintln!("peers: creating the Python environment {}", venv.display());
    run_captured(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run_captured(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"])
            .arg(scripts.join("requirements.txt")),
    )?;
    std::fs::write(stamp, wanted)?;
    Ok(python)
}

fn node_modules(work: &Path, scripts: &Path) -> Result<PathBuf> {
    let dir = work.join("node");
    let wanted = std::fs::read_to_string(scripts.join("package.json"))?;
    let stamp = dir.join("nudge-package.json");
    if dir.join("node_modules/web-push").exists() && stamp_matches(&stamp, &wanted) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("package.json"), &wanted)?;
    let lock = scripts.join("package-lock.json");
    if lock.exists() {
        std::fs::copy(&lock, dir.join("package-lock.json"))?;
    }
    eprintln!("peers: installing Node's web-push into {}", dir.display());
    let verb = if lock.exists() { "ci" } else { "install" };
    run_captured(
        Command::new("npm").args([verb, "--no-audit", "--no-fund", "--silent"]).current_dir(&dir),
    )?;
    std::fs::write(stamp, wanted)?;
    Ok(dir)
}
