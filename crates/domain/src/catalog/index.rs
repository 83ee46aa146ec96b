//! What reports need of a catalog (each valid service's name, team and repositories), kept in a
//! small file beside the store so that `baton dora --team`, `history` and `builds` need not read
//! and check every definition each time: on a 2,000-file catalog that read was most of a report.
//!
//! The index is a cache of [`CatalogLoader::load`], never a second reader: it is used only while
//! every file the load read is unchanged (same set of files, and each one's size, modification
//! and change times and inode), for the same catalog, root, loader and Baton version; otherwise
//! the catalog is loaded in full and the index rewritten. Statting 2,000 files costs a few
//! milliseconds. A file modified within [`SETTLING`] of the load is not trusted to show a later
//! edit in its modification time (file systems with coarse timestamps), so the index is then
//! not written.

use super::ServiceEntry;
use super::parse::{CatalogLoader, catalog_files, env_root};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The index's file name in the state directory.
pub const REPORT_INDEX_FILE: &str = "catalog-index.json";

/// How old every file's last change must be for the index to be written.
const SETTLING: Duration = Duration::from_secs(2);

/// One valid service of the catalog, as reports select it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    pub name: String,
    /// The team its releases belong to ([`crate::reports::team_of`]).
    pub team: Option<String>,
    /// [`ServiceEntry::repositories`].
    pub repositories: Vec<String>,
}

impl ServiceSummary {
    pub fn of(entry: &ServiceEntry) -> ServiceSummary {
        ServiceSummary {
            name: entry.name.clone(),
            team: crate::reports::team_of(entry).map(str::to_owned),
            repositories: entry.repositories().into_iter().map(str::to_owned).collect(),
        }
    }

    /// As [`ServiceEntry::declares_repository`].
    pub fn declares_repository(&self, full_name: &str) -> bool {
        super::names_repository(self.repositories.iter().map(String::as_str), full_name)
    }
}

/// What the services were read under: any difference and the index is not used.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Key {
    baton: String,
    catalog: PathBuf,
    root: PathBuf,
    for_cloud: bool,
    check_files: bool,
}

/// One file as the load found it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Stamp {
    path: PathBuf,
    len: u64,
    /// Nanoseconds since the Unix epoch.
    modified: u128,
    /// Unix: the inode's change time (nanoseconds) and number, which an edit that puts the
    /// modification time back (`touch -r`, `cp -p`) still changes.
    changed: i128,
    inode: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    key: Key,
    files: Vec<Stamp>,
    services: Vec<ServiceSummary>,
}

impl CatalogLoader<'_> {
    /// The valid services of the catalog at `path`, as [`CatalogLoader::load_with_env_root`]
    /// finds them, from the index at `index` when the catalog has not changed since it was
    /// written, else loaded in full (and the index rewritten, best effort: a report on a
    /// read-only state directory still works, reading the catalog each time).
    pub fn report_services(&self, path: &Path, index: &Path) -> io::Result<Vec<ServiceSummary>> {
        let root = env_root();
        let loader = self.rooted(root.as_deref());
        let key = Key {
            baton: env!("CARGO_PKG_VERSION").to_owned(),
            catalog: std::fs::canonicalize(path)?,
            root: loader.root_of(path)?.path().to_path_buf(),
            for_cloud: loader.for_cloud,
            check_files: loader.check_files,
        };
        // A file that cannot be stated is left to the load, which says why.
        let files: Option<Vec<Stamp>> = catalog_files(path)?.0.into_iter().map(stamp).collect();
        if let Some(files) = &files
            && let Some(kept) = read_index(index).filter(|kept| kept.key == key && kept.files == *files)
        {
            return Ok(kept.services);
        }
        let services: Vec<ServiceSummary> = loader.load(path)?.services().iter().map(ServiceSummary::of).collect();
        if let Some(files) = files.filter(|files| settled(files, SystemTime::now())) {
            let written = Index { key, files, services };
            // Best effort, as said: the services are right either way.
            let _ = write_index(index, &written);
            return Ok(written.services);
        }
        Ok(services)
    }
}

fn stamp(path: PathBuf) -> Option<Stamp> {
    let meta = std::fs::metadata(&path).ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_nanos();
    let (changed, inode) = identity(&meta);
    Some(Stamp { path, len: meta.len(), modified, changed, inode })
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (i128, u64) {
    use std::os::unix::fs::MetadataExt;
    (i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()), meta.ino())
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> (i128, u64) {
    (0, 0)
}

/// Whether every file was last modified [`SETTLING`] before `now`.
fn settled(files: &[Stamp], now: SystemTime) -> bool {
    let before = now.checked_sub(SETTLING).and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    before.is_some_and(|before| files.iter().all(|file| file.modified < before.as_nanos()))
}

/// The index at `path`, or None when there is none or it cannot be read (then it is rewritten).
fn read_index(path: &Path) -> Option<Index> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes beside it and renames, so that a report never reads half an index.
fn write_index(path: &Path, index: &Index) -> io::Result<()> {
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    std::fs::write(&partial, serde_json::to_vec(index)?)?;
    std::fs::rename(&partial, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::shape::test_registry;

    fn definition(name: &str, team: &str) -> String {
        [
            "schema-version: v2.2".to_string(),
            format!("dd-service: {name}"),
            format!("team: {team}"),
            format!("links: [{{name: Source, type: repo, url: https://github.com/acme/{name}}}]"),
            "extensions:".into(),
            "  baton:".into(),
            "    environment: production".into(),
            "    release-branch: main".into(),
            "    build: {provider: script, command: [b]}".into(),
            "    deploy: {provider: script, command: [d], waves: [{name: all, targets: [a]}]}".into(),
            "    health: {gates: [{provider: script, command: [h]}]}\n".into(),
        ]
        .join("\n")
    }

    /// A catalog directory and a state directory, removed when dropped.
    struct Dirs(PathBuf);

    impl Dirs {
        fn new(test: &str) -> Dirs {
            let dir = std::env::temp_dir().join(format!("baton-index-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("catalog")).unwrap();
            Dirs(dir)
        }

        fn catalog(&self) -> PathBuf {
            self.0.join("catalog")
        }

        fn index(&self) -> PathBuf {
            self.0.join(REPORT_INDEX_FILE)
        }

        /// Writes a file of the catalog, last modified long ago (settled), at the same time as
        /// every other: only its size, change time or inode can tell an edit.
        fn write(&self, file: &str, text: &str) {
            let path = self.catalog().join(file);
            std::fs::write(&path, text).unwrap();
            let long_ago = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(long_ago).unwrap();
        }

        fn services(&self) -> Vec<(String, Option<String>)> {
            let registry = test_registry();
            let read = CatalogLoader { root: Some(self.0.as_path()), ..CatalogLoader::for_reports(&registry) }
                .report_services(&self.catalog(), &self.index());
            read.unwrap().into_iter().map(|s| (s.name, s.team)).collect()
        }

        /// Rewrites the index's teams, so that a report that used it shows it did.
        fn forge_index(&self) {
            let text = std::fs::read_to_string(self.index()).unwrap();
            std::fs::write(self.index(), text.replace("\"team\":\"", "\"team\":\"forged-")).unwrap();
        }
    }

    impl Drop for Dirs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn named(pairs: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        pairs.iter().map(|(name, team)| (name.to_string(), Some(team.to_string()))).collect()
    }

    #[test]
    fn an_unchanged_catalog_is_read_from_the_index_and_any_change_reloads_it() {
        let dirs = Dirs::new("changes");
        dirs.write("web.yaml", &definition("web", "team-01"));
        dirs.write("api.yaml", &definition("api", "team-02"));
        dirs.write("broken.yaml", "schema-version: v2.2\ndd-service: broken\nextensions: {baton: {}}\n");
        assert_eq!(dirs.services(), named(&[("api", "team-02"), ("web", "team-01")]), "the load's valid services, in file order");
        dirs.forge_index();
        assert_eq!(dirs.services(), named(&[("api", "forged-team-02"), ("web", "forged-team-01")]), "read from the index");

        // An edit of the same size and modification time: the change time tells.
        dirs.write("web.yaml", &definition("web", "team-03"));
        assert_eq!(dirs.services(), named(&[("api", "team-02"), ("web", "team-03")]));
        dirs.forge_index();
        dirs.write("new.yaml", &definition("new", "team-04"));
        assert_eq!(dirs.services(), named(&[("api", "team-02"), ("new", "team-04"), ("web", "team-03")]));
        dirs.forge_index();
        std::fs::remove_file(dirs.catalog().join("api.yaml")).unwrap();
        assert_eq!(dirs.services(), named(&[("new", "team-04"), ("web", "team-03")]));
        // A fixed file's service joins (from invalid to valid).
        dirs.forge_index();
        dirs.write("broken.yaml", &definition("broken", "team-05"));
        assert_eq!(dirs.services(), named(&[("broken", "team-05"), ("new", "team-04"), ("web", "team-03")]));
    }

    #[test]
    fn a_catalog_just_edited_is_read_in_full_until_it_settles() {
        let dirs = Dirs::new("settling");
        dirs.write("web.yaml", &definition("web", "team-01"));
        std::fs::write(dirs.catalog().join("api.yaml"), definition("api", "team-02")).unwrap();
        assert_eq!(dirs.services(), named(&[("api", "team-02"), ("web", "team-01")]));
        assert!(!dirs.index().exists(), "a file modified just now could change again within its timestamp's resolution");
    }

    #[test]
    fn an_unreadable_index_is_rewritten_and_a_state_directory_that_refuses_it_changes_nothing() {
        let dirs = Dirs::new("unreadable");
        dirs.write("web.yaml", &definition("web", "team-01"));
        std::fs::write(dirs.index(), "{not json").unwrap();
        assert_eq!(dirs.services(), named(&[("web", "team-01")]));
        assert!(read_index(&dirs.index()).is_some(), "rewritten");

        let registry = test_registry();
        let loader = CatalogLoader { root: Some(dirs.0.as_path()), ..CatalogLoader::for_reports(&registry) };
        let nowhere = dirs.0.join("no-such-state-dir").join(REPORT_INDEX_FILE);
        let read = loader.report_services(&dirs.catalog(), &nowhere).unwrap();
        assert_eq!(read, vec![ServiceSummary { name: "web".into(), team: Some("team-01".into()), repositories: vec!["acme/web".into()] }]);
    }
}
