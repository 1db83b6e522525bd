//! Unpacks one layer tarball into a directory in overlayfs lower-dir form.
//!
//! OCI layers mark deletions with whiteout files (`.wh.<name>`) and "replace this whole
//! directory" with `.wh..wh..opq`; overlayfs expresses the same with a 0:0 character device
//! and the `trusted.overlay.opaque=y` xattr, so layers are converted once here and then
//! stacked by the kernel with no copying per container.

use super::HashingReader;
use std::ffi::CString;
use std::fs;
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Unpacks a (possibly gzip'd) layer tar into `dest`, returning the layer's diffID
/// (`sha256:` of the uncompressed tar).
pub(crate) fn unpack(mut reader: impl BufRead, dest: &Path) -> io::Result<String> {
    let gzipped = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let plain: Box<dyn Read> = if gzipped {
        Box::new(flate2::bufread::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(HashingReader::new(plain));
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = sanitize(&entry.path()?)?;
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if name == OPAQUE_MARKER {
            let dir = dest.join(&parent);
            fs::create_dir_all(&dir)?;
            xattr::set(&dir, "trusted.overlay.opaque", b"y")?;
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let dir = dest.join(&parent);
            fs::create_dir_all(&dir)?;
            let target = dir.join(hidden);
            if let Ok(meta) = fs::symlink_metadata(&target) {
                if meta.is_dir() {
                    fs::remove_dir_all(&target)?;
                } else {
                    fs::remove_file(&target)?;
                }
            }
            mknod_whiteout(&target)?;
        } else {
            entry.unpack_in(dest)?;
        }
    }
    // Hash the end-of-archive padding too: the diffID covers the whole stream.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink())?;
    Ok(rest.digest())
}

/// Keeps only normal components, so no entry can name a path outside the layer dir.
fn sanitize(path: &Path) -> io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("layer entry escapes its root: {}", path.display()),
                ))
            }
        }
    }
    Ok(out)
}

fn mknod_whiteout(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path; mknod does not retain the pointer.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
