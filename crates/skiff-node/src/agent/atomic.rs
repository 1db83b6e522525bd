//! The kubelet's atomic writer for volumes whose content comes from the API (configMap,
//! secret, downwardAPI, projected): a container sees either the old files or the new, never
//! a mix, and a change reaches running containers without a restart.
//!
//! Layout of a volume dir, as upstream's `AtomicWriter`:
//! ```text
//! ..2026_12_07_09_16_41.123456789/   the payload, one directory per version
//! ..data -> ..2026_12_07_09_16_41.123456789
//! greeting -> ..data/greeting        one link per top-level name of the payload
//! ```
//! A new version is written to a new timestamped dir, then `..data` is swapped to it by
//! renaming a fresh symlink over it (atomic), then user-visible links are added or removed
//! and the old version deleted. A `subPath` mount binds one file of one version, so it keeps
//! its content (as upstream: subPath volumes are not updated).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Files of a volume: relative path to content.
pub type Files = BTreeMap<String, Vec<u8>>;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// What writing `desired` over a volume holding `current` (`None`: no payload yet, or the
/// flat files of an older skiff) takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePlan {
    /// Write a new version and swap `..data` to it.
    pub swap: bool,
    /// Top-level names that need a `name -> ..data/name` link.
    pub link: Vec<String>,
    /// Top-level names of the old version that are gone: their links go.
    pub unlink: Vec<String>,
}

/// Why a payload cannot be written.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty()
        || path.starts_with('/')
        || path.starts_with("..")
        || path.split('/').any(|c| c.is_empty() || c == "..")
    {
        return Err(format!("invalid path {path:?}"));
    }
    Ok(())
}

fn top_level(files: &Files) -> BTreeSet<String> {
    files
        .keys()
        .filter_map(|p| p.split('/').next())
        .map(String::from)
        .collect()
}

/// Plans a write, pure. `current` holds the files of the version `..data` points to;
/// `linked` the top-level names that already link into `..data`. Only content counts: a
/// pod's volumes (and so their modes) never change, while `fsGroup` adjusts the modes
/// written.
pub fn plan(current: Option<&Files>, linked: &BTreeSet<String>, desired: &Files) -> WritePlan {
    let swap = current != Some(desired);
    let new_top = top_level(desired);
    let link = new_top.difference(linked).cloned().collect();
    let old_top: BTreeSet<String> = current
        .map(|c| {
            c.keys()
                .filter_map(|p| p.split('/').next())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let unlink = old_top
        .union(linked)
        .filter(|n| !new_top.contains(*n))
        .cloned()
        .collect();
    WritePlan { swap, link, unlink }
}

/// Serialises writes within the process: a container starting and a change arriving may
/// write the same volume at once.
static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Writes `files` (each with `mode`) into the volume `dir` atomically; returns whether a
/// new version was written.
pub fn write(dir: &Path, files: &Files, mode: u32) -> io::Result<bool> {
    update(dir, mode, |_| files.clone())
}

/// Writes the files `f` makes of the current ones (empty before the first write).
pub fn update(dir: &Path, mode: u32, f: impl FnOnce(Files) -> Files) -> io::Result<bool> {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(dir)?;
    let current = read_current(dir);
    let files = f(current.clone().unwrap_or_default());
    for p in files.keys() {
        check_path(p).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    let linked = linked(dir);
    let plan = plan(current.as_ref(), &linked, &files);
    if plan.swap {
        let version = format!("..{}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S.%f"));
        let target = dir.join(&version);
        std::fs::create_dir(&target)?;
        for (path, content) in &files {
            let p = target.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, content)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        }
        let tmp = dir.join(DATA_TMP);
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&version, &tmp)?;
        std::fs::rename(&tmp, dir.join(DATA))?;
    }
    for name in &plan.link {
        let at = dir.join(name);
        // A flat file or directory of an older skiff, or a stray entry, gives way.
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&at)?,
            Ok(_) => std::fs::remove_file(&at)?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(Path::new(DATA).join(name), &at)?;
    }
    for name in &plan.unlink {
        let _ = std::fs::remove_file(dir.join(name));
    }
    if plan.swap {
        // The old version, and any left by a write that died halfway.
        let current = std::fs::read_link(dir.join(DATA)).ok();
        for e in std::fs::read_dir(dir)?.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let is_version = name.starts_with("..") && name != DATA && name != DATA_TMP;
            if is_version && current.as_deref() != Some(Path::new(name.as_ref())) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(plan.swap)
}

/// The files of the version `..data` points to.
fn read_current(dir: &Path) -> Option<Files> {
    let version = dir.join(std::fs::read_link(dir.join(DATA)).ok()?);
    let mut out = BTreeMap::new();
    fn walk(root: &Path, rel: &str, out: &mut Files) -> Option<()> {
        for e in std::fs::read_dir(root.join(rel)).ok()?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else {
                out.insert(path, std::fs::read(e.path()).ok()?);
            }
        }
        Some(())
    }
    walk(&version, "", &mut out)?;
    Some(out)
}

/// Top-level names that already link into `..data`.
fn linked(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let target = std::fs::read_link(e.path()).ok()?;
            (target == Path::new(DATA).join(&name)).then_some(name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect()
    }

    fn names(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_swap_only_on_change_and_keep_links_in_step() {
        let a = files(&[
            ("greeting", "hi"),
            ("conf/app.yaml", "x: 1"),
            ("conf/b", ""),
        ]);
        let changed = files(&[
            ("greeting", "hello"),
            ("conf/app.yaml", "x: 1"),
            ("conf/b", ""),
        ]);
        let fewer = files(&[("greeting", "hi")]);
        let linked_a = names(&["greeting", "conf"]);
        struct Case<'a> {
            what: &'a str,
            current: Option<Files>,
            linked: BTreeSet<String>,
            desired: &'a Files,
            want: WritePlan,
        }
        let plan_of = |swap, link: &[&str], unlink: &[&str]| WritePlan {
            swap,
            link: link.iter().map(|s| s.to_string()).collect(),
            unlink: unlink.iter().map(|s| s.to_string()).collect(),
        };
        let cases = [
            Case {
                what: "first write: everything",
                current: None,
                linked: names(&[]),
                desired: &a,
                want: plan_of(true, &["conf", "greeting"], &[]),
            },
            Case {
                what: "unchanged: nothing",
                current: Some(a.clone()),
                linked: linked_a.clone(),
                desired: &a,
                want: plan_of(false, &[], &[]),
            },
            Case {
                what: "a value changed: swap, links stay",
                current: Some(a.clone()),
                linked: linked_a.clone(),
                desired: &changed,
                want: plan_of(true, &[], &[]),
            },
            Case {
                what: "a key went: swap and its link goes",
                current: Some(a.clone()),
                linked: linked_a.clone(),
                desired: &fewer,
                want: plan_of(true, &[], &["conf"]),
            },
            Case {
                what: "a link lost: restored without a swap",
                current: Some(a.clone()),
                linked: names(&["conf"]),
                desired: &a,
                want: plan_of(false, &["greeting"], &[]),
            },
        ];
        for c in cases {
            assert_eq!(
                plan(c.current.as_ref(), &c.linked, c.desired),
                c.want,
                "{}",
                c.what
            );
        }
    }

    #[test]
    fn paths_stay_inside_the_volume() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "..data",
            "a//b",
            "a/",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["a", "a/b", "a.b", ".hidden"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn writes_swap_the_data_link_and_remove_the_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("cfg");
        let read = |p: &str| std::fs::read_to_string(vol.join(p)).unwrap();
        assert!(write(&vol, &files(&[("greeting", "hi"), ("conf/a", "1")]), 0o644).unwrap());
        assert_eq!(read("greeting"), "hi");
        assert_eq!(read("conf/a"), "1");
        assert_eq!(
            std::fs::read_link(vol.join("greeting")).unwrap(),
            Path::new("..data/greeting")
        );
        let first = std::fs::read_link(vol.join("..data")).unwrap();
        // The same content again: nothing written.
        assert!(!write(&vol, &files(&[("greeting", "hi"), ("conf/a", "1")]), 0o644).unwrap());
        assert_eq!(std::fs::read_link(vol.join("..data")).unwrap(), first);
        // A file opened through the old version keeps reading it (what a subPath mount
        // sees), while the volume shows the new one.
        let old = std::fs::File::open(vol.join("greeting")).unwrap();
        assert!(write(&vol, &files(&[("greeting", "hello")]), 0o600).unwrap());
        assert_eq!(read("greeting"), "hello");
        assert!(!vol.join("conf").exists());
        let mut text = String::new();
        std::io::Read::read_to_string(&mut &old, &mut text).unwrap();
        assert_eq!(text, "hi");
        let versions: Vec<String> = std::fs::read_dir(&vol)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != "..data")
            .collect();
        assert_eq!(versions.len(), 1, "{versions:?}");
        let mode = std::fs::metadata(vol.join("greeting"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // update() sees the current files.
        update(&vol, 0o600, |mut f| {
            f.insert("token".into(), b"t".to_vec());
            f
        })
        .unwrap();
        assert_eq!(read("greeting"), "hello");
        assert_eq!(read("token"), "t");
    }

    #[test]
    fn flat_files_of_an_older_layout_give_way_to_links() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("cfg");
        std::fs::create_dir_all(vol.join("conf")).unwrap();
        std::fs::write(vol.join("greeting"), "old").unwrap();
        std::fs::write(vol.join("conf/a"), "old").unwrap();
        write(
            &vol,
            &files(&[("greeting", "new"), ("conf/a", "new")]),
            0o644,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(vol.join("greeting")).unwrap(),
            "new"
        );
        assert_eq!(std::fs::read_to_string(vol.join("conf/a")).unwrap(), "new");
    }
}
