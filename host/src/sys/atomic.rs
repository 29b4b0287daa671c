//! Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that readers see either the old file or the whole new one.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    // Temp files are created 0600; the artifact should be readable like any other file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// [`write`] with an error that names the file.
pub fn write_ctx(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes `files` into folder `out` as one step: a sibling temp folder renamed into place,
/// so readers see the old folder or the whole new one. Whatever `out` held is deleted, so the
/// caller checks first that nothing is lost (as `quantize` does).
pub fn write_folder(out: &Path, files: &[(&str, Vec<u8>)]) -> anyhow::Result<()> {
    use anyhow::Context;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".folder-")
        .tempdir_in(parent)?;
    for (name, bytes) in files {
        write_ctx(&tmp.path().join(name), bytes)?;
    }
    let tmp = tmp.keep();
    if out.exists() {
        let old = parent.join(format!(".old-{}", std::process::id()));
        std::fs::rename(out, &old)
            .with_context(|| format!("moving the old {} aside", out.display()))?;
        std::fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
        std::fs::remove_dir_all(&old).ok();
    } else {
        std::fs::rename(&tmp, out).with_context(|| format!("renaming into {}", out.display()))?;
    }
    Ok(())
}
