//! Checks that need the filesystem, made when a catalog is loaded from files:
//! a command's `working-dir` and `artifact-file` stay inside the catalog root,
//! its working directory exists and its programs can be found.
//! [`parse_catalog_documents`](super::parse_catalog_documents) (a text from
//! anywhere) makes none of them.
//!
//! Only those two paths are confined: Baton reads the artifact file back (into
//! events and messages) and runs commands in the working directory. A program
//! is not: a command can run anything it names anyway.

use super::shape::Kind;
use super::tree::{Node, Value};
use super::validate::{Checker, index, join, provider_nodes};
use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Environment variable that sets the catalog root for [`load_catalog`](super::load_catalog).
pub const CATALOG_ROOT_ENV: &str = "BATON_CATALOG_ROOT";

/// The directory every `working-dir` and `artifact-file` must stay inside.
pub(crate) struct Root {
    /// Canonical: resolved paths are compared with it.
    path: PathBuf,
    /// What it is, for messages.
    what: &'static str,
    /// Set by the operator: absolute paths inside it are then allowed too.
    explicit: bool,
}

impl Root {
    pub fn explicit(path: &Path) -> io::Result<Root> {
        let path =
            std::fs::canonicalize(path).map_err(|err| io::Error::new(err.kind(), format!("catalog root {}: {err}", path.display())))?;
        Ok(Root { path, what: "the catalog root the operator set (`BATON_CATALOG_ROOT`, `--root`)", explicit: true })
    }

    /// The repository holding `catalog` (the nearest directory above it with a `.git`),
    /// else the catalog's own directory: service scripts usually sit beside the catalog
    /// in its repository (`working-dir: ../services/web`), never elsewhere on the machine.
    pub fn around(catalog: &Path) -> io::Result<Root> {
        let catalog = std::fs::canonicalize(catalog)?;
        let dir = if catalog.is_dir() { catalog.as_path() } else { catalog.parent().unwrap_or(&catalog) };
        Ok(match dir.ancestors().find(|d| d.join(".git").exists()) {
            Some(repository) => Root {
                path: repository.to_path_buf(),
                what: "the repository holding the catalog: the nearest directory above it with a .git",
                explicit: false,
            },
            None => Root {
                path: dir.to_path_buf(),
                what: "the catalog's directory: no directory above it has a .git, whose repository would be the root",
                explicit: false,
            },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why a catalog file found in a directory must not be read: a symlink leading out of the
    /// root, whose definitions (and the commands they run) nobody reviewing the catalog sees.
    pub fn refuses_file(&self, file: &Path) -> Option<String> {
        if !std::fs::symlink_metadata(file).is_ok_and(|meta| meta.file_type().is_symlink()) {
            return None;
        }
        match std::fs::canonicalize(file) {
            Ok(real) if real.starts_with(&self.path) => None,
            Ok(real) => Some(format!("expected a file inside {}, found a symlink to {}", self.describe(), real.display())),
            Err(err) => Some(format!("cannot follow the symlink: {err}")),
        }
    }

    /// The root and the rule that chose it, so the person refused knows how to move it.
    fn describe(&self) -> String {
        if self.explicit {
            return format!("{} ({})", self.path.display(), self.what);
        }
        format!(
            "{} ({}; `{CATALOG_ROOT_ENV}` sets another root, inside which absolute paths are allowed too)",
            self.path.display(),
            self.what
        )
    }
}

/// Where one catalog file's relative paths resolve.
pub(crate) struct Place<'a> {
    /// The catalog file's directory, canonical.
    pub dir: PathBuf,
    pub root: &'a Root,
}

/// The command sections of a Baton block and their argv fields.
impl Place<'_> {
    /// The paths and programs of every provider block: its [`Kind::WorkingDir`] must be a
    /// directory inside the root, its [`Kind::RelativePath`]s stay inside the root, and each
    /// [`Kind::Argv`]'s program exists (on the block's own `PATH` when its environment sets one).
    pub fn check_commands(&self, checker: &mut Checker, baton: &Node, path: &str) {
        for block in provider_nodes(baton, path) {
            let (block_path, node) = (&block.path, block.node);
            let Some(shape) = block.name.and_then(|name| checker.registry.find(block.slot, name)) else {
                continue;
            };
            let field_of = |kind: fn(&Kind) -> bool| shape.fields.iter().filter(move |field| kind(&field.kind));
            let work_dir = match field_of(|k| matches!(k, Kind::WorkingDir)).find_map(|field| Some((field.name, node.get(field.name)?))) {
                Some((name, dir)) => match self.working_dir(checker, dir, &join(block_path, name)) {
                    Some(dir) => dir,
                    None => continue,
                },
                None => self.dir.clone(),
            };
            for field in field_of(|k| matches!(k, Kind::RelativePath)) {
                if let Some(file) = node.get(field.name) {
                    self.resolve(checker, file, &join(block_path, field.name), &work_dir);
                }
            }
            let search = field_of(|k| matches!(k, Kind::Env)).find_map(|field| node.get(field.name)?.get("PATH")?.as_str());
            for field in field_of(|k| matches!(k, Kind::Argv)) {
                if let Some(Value::Seq(items)) = node.get(field.name).map(|n| &n.value)
                    && let Some(program) = items.first()
                {
                    check_program(checker, program, &index(&join(block_path, field.name), 0), &work_dir, search);
                }
            }
        }
    }

    fn working_dir(&self, checker: &mut Checker, node: &Node, path: &str) -> Option<PathBuf> {
        let dir = self.resolve(checker, node, path, &self.dir)?;
        if dir.is_dir() {
            return Some(dir);
        }
        let what = if dir.exists() { "is not a directory" } else { "does not exist" };
        checker.error(node.line, path, format!("expected an existing directory: {} {what}", dir.display()));
        None
    }
    fn resolve(&self, checker: &mut Checker, node: &Node, path: &str, base: &Path) -> Option<PathBuf> {
        let given = Path::new(node.as_str()?);
        let root = self.root;
        if given.is_absolute() && !root.explicit {
            let message = format!(
                "expected a path relative to the catalog file's directory, found an absolute path; paths must stay inside {}",
                root.describe()
            );
            checker.error(node.line, path, message);
            return None;
        }
        let resolved = normalize(&base.join(given));
        let escape = if !resolved.starts_with(&root.path) {
            format!("it leads to {}", resolved.display())
        } else {
            // A symlink inside the root can still point out of it.
            match std::fs::canonicalize(&resolved) {
                Ok(real) if !real.starts_with(&root.path) => format!("it leads through a symlink to {}", real.display()),
                _ => return Some(resolved),
            }
        };
        checker.error(node.line, path, format!("expected a path inside {}; {escape}", root.describe()));
        None
    }
}

/// `..` and `.` removed without touching the filesystem; `..` at the root stays there.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A program with a `/` is a file relative to the working directory; a bare name is looked
/// up on `search` (the command's PATH) or the process's PATH, as the command's spawn will.
fn check_program(checker: &mut Checker, node: &Node, path: &str, work_dir: &Path, search: Option<&str>) {
    let Some(program) = node.as_str().filter(|p| !p.trim().is_empty()) else { return };
    let message = if program.contains('/') {
        let file = normalize(&work_dir.join(program));
        if file.is_file() {
            return;
        }
        format!("expected a program file: {} does not exist", file.display())
    } else {
        let process_path = std::env::var_os("PATH");
        let search = search.map(OsStr::new).or(process_path.as_deref()).unwrap_or_default();
        if std::env::split_paths(search).any(|dir| dir.join(program).is_file()) {
            return;
        }
        format!(
            "expected a program on PATH or a path to one (e.g. `./{program}`, relative to the working directory {}): \
             `{program}` is not on PATH",
            work_dir.display()
        )
    };
    checker.error(node.line, path, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("/a/b/../c/./d")), Path::new("/a/c/d"));
        assert_eq!(normalize(Path::new("/a/../../..")), Path::new("/"));
        assert_eq!(normalize(Path::new("/a/b/")), Path::new("/a/b"));
    }
}
