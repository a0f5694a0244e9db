//! `conclave-bench report`: docs/BENCHMARKS.md from the results `scripts/compare-etcd` left in
//! its work dir, read as the types the loads wrote them from. The script runs the servers and
//! the loads; this writes what they showed.

mod document;
mod manifest;
mod results;
mod table;

use std::fs;
use std::path::Path;

use anyhow::Context;

use crate::args::ReportArgs;
use manifest::Manifest;
use results::Results;

/// Where the part of the report the script does not write begins: `scripts/compare-builds`
/// adds its tables there, and every report keeps them.
const KEPT_SECTION: &str = "## Before and after, by change\n";

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let manifest_path = args.work.join("run.json");
    let text = fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a run manifest", manifest_path.display()))?;
    let results = Results::new(&args.work, &manifest);
    let mut report = document::write(&manifest, &results)?;
    if let Some(kept) = kept_section(&args.out)? {
        report.push('\n');
        report.push_str(&kept);
    }
    write_atomically(&args.out, &report)
}

/// The kept section of the report at `path`, from its heading to the end, if there is one.
fn kept_section(path: &Path) -> anyhow::Result<Option<String>> {
    let old = match fs::read_to_string(path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(kept_part(&old).map(str::to_string))
}

/// From the kept section's heading (at the start of a line) to the end.
fn kept_part(report: &str) -> Option<&str> {
    report
        .match_indices(KEPT_SECTION)
        .find(|(at, _)| *at == 0 || report[..*at].ends_with('\n'))
        .map(|(at, _)| &report[at..])
}

/// Writes beside the target and renames, so that a failed run never leaves half a report.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("md.partial");
    fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_section_runs_from_its_heading_at_a_line_start_to_the_end() {
        let report = "# Benchmarks\n\nSee \"## Before and after, by change\n\" below.\n\n\
                      ## Before and after, by change\n\n### One change\n";
        assert_eq!(
            kept_part(report),
            Some("## Before and after, by change\n\n### One change\n")
        );
        assert_eq!(kept_part("# Benchmarks\n"), None);
    }
}
