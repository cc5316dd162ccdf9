//! The sealed days section of a snapshot, and the list of day files kept
//! beside each snapshot (`<position>.days`): a snapshot holds the table of
//! sealed days, not their rows (see the parent module and
//! `docs/design/snapshots-and-recovery.md`).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use super::{Contents, Decoded, In, Out, list};
use crate::error::{IoContext, Result};
use crate::store::log::LogPosition;
use crate::store::sealed::{BufferedEvent, SealBuffer};
use crate::store::state::sealed_days::{self, DayFiles, SealedDays};

/// A day file a snapshot names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayFileRef {
    /// The UTC day.
    pub day: i32,
    /// The file's version.
    pub version: u32,
    /// The log position of its cut.
    pub cut_position: u64,
    /// Its rows.
    pub rows: u64,
    /// Its checksum.
    pub checksum: u32,
}

/// Writes the sealed days, ascending: day, version, cut position, then a
/// file reference (0, rows, checksum) or a buffer (1, checksum flag and
/// value, events: id and columns).
pub(super) fn encode(out: &mut Out, sealed_days: &SealedDays) {
    let sealed: Vec<_> = sealed_days.iter().collect();
    out.len(sealed.len());
    for day in sealed {
        out.u32(day.day as u32);
        out.u32(day.version);
        out.u64(day.cut_position);
        // A file in use always has its checksum (`DaySealed` installed it).
        let checksum = day.checksum;
        match day.buffer() {
            None => {
                out.u8(0);
                out.u64(day.rows());
                out.u32(checksum.unwrap_or(0));
            }
            Some(buffer) => {
                out.u8(1);
                out.u8(u8::from(checksum.is_some()));
                out.u32(checksum.unwrap_or(0));
                out.len(buffer.events.len());
                for e in &buffer.events {
                    out.u32(e.event);
                    out.len(e.users.len());
                    e.users.iter().for_each(|&u| out.u32(u));
                    e.starts.iter().for_each(|&s| out.u32(s));
                    out.len(e.ts_ms.len());
                    e.ts_ms.iter().for_each(|&t| out.i64(t));
                    e.order.iter().for_each(|&o| out.u32(o));
                    e.props_at.iter().for_each(|&p| out.u64(p));
                    out.bytes(&e.props);
                }
            }
        }
    }
}

/// Reads what [`encode`] wrote: the days held in buffers, and the day files named.
pub(super) fn decode(input: &mut In) -> Decoded<(SealedDays, Vec<DayFileRef>)> {
    let mut sealed = SealedDays::default();
    let mut day_files = Vec::new();
    for _ in 0..input.len()? {
        let day = input.u32()? as i32;
        let version = input.u32()?;
        let cut_position = input.u64()?;
        if input.u8()? == 0 {
            let (rows, checksum) = (input.u64()?, input.u32()?);
            day_files.push(DayFileRef { day, version, cut_position, rows, checksum });
            continue;
        }
        let has_checksum = input.u8()? != 0;
        let value = input.u32()?;
        let checksum = has_checksum.then_some(value);
        let mut events = Vec::new();
        for _ in 0..input.len()? {
            let mut e = BufferedEvent { event: input.u32()?, ..Default::default() };
            let users = input.len()?;
            for _ in 0..users {
                e.users.push(input.u32()?);
            }
            for _ in 0..=users {
                e.starts.push(input.u32()?);
            }
            let rows = input.len()?;
            for _ in 0..rows {
                e.ts_ms.push(input.i64()?);
            }
            for _ in 0..rows {
                e.order.push(input.u32()?);
            }
            for _ in 0..=rows {
                e.props_at.push(input.u64()?);
            }
            e.props = input.bytes()?;
            e.check_shape().map_err(|why| format!("sealed day {day}: {why}"))?;
            events.push(e);
        }
        sealed.restore_buffer(SealBuffer { day, cut_position, events }, version, checksum);
    }
    Ok((sealed, day_files))
}

/// The name of the list of day files the snapshot at `position` names.
pub(super) fn manifest_name(position: LogPosition) -> String {
    format!("{position:020}.days")
}

/// The names of the day files that the snapshots in `dir` name: they are
/// kept until no snapshot names them, so an older snapshot stays usable
/// after a day's next version replaced its file.
pub fn day_files_in_use(dir: &Path) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (position, _) in list(dir) {
        if let Ok(text) = fs::read_to_string(dir.join(manifest_name(position))) {
            names.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        }
    }
    names
}

/// Maps the day files `contents` names, checks their headers and
/// directories (sections are checked on first read and in the background
/// pass, `Engine::check_day_files`), and installs them.
pub(super) fn resolve_day_files(mut contents: Contents, files: &DayFiles) -> Decoded<Contents> {
    let sealed = &mut contents.state.store.sealed;
    sealed.set_files(files.clone());
    for r in std::mem::take(&mut contents.day_files) {
        let file = sealed_days::open_checked(
            files,
            (r.day, r.version, r.checksum),
            r.rows,
            r.cut_position,
            sealed_days::SectionChecks::OnFirstRead,
        )
        .map_err(|e| format!("its day file cannot be used: {e}"))?;
        sealed.restore_file(file, r.checksum);
    }
    Ok(contents)
}

/// The names of the day files `sealed_days` uses.
pub(super) fn day_file_names(sealed_days: &SealedDays) -> Vec<String> {
    sealed_days
        .iter()
        .filter(|d| d.file().is_some())
        .map(|d| crate::store::sealed::format::file_name(d.day, d.version))
        .collect()
}

/// Writes the list of day files `names` beside the snapshot at `position`
/// in `dir`, durably.
pub(super) fn write_manifest(dir: &Path, position: LogPosition, names: &[String]) -> Result<()> {
    let manifest = dir.join(manifest_name(position));
    let manifest_tmp = dir.join(format!("{}.tmp", manifest_name(position)));
    let mut file =
        File::create(&manifest_tmp).context(|| format!("creating {}", manifest_tmp.display()))?;
    file.write_all(names.join("\n").as_bytes())
        .context(|| format!("writing {}", manifest_tmp.display()))?;
    file.sync_all().context(|| format!("syncing {}", manifest_tmp.display()))?;
    fs::rename(&manifest_tmp, &manifest)
        .context(|| format!("renaming {} into place", manifest_tmp.display()))?;
    Ok(())
}
