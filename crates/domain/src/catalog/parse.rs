//! From catalog text to [`ServiceEntry`]s and [`Diagnostic`]s.
//!
//! Every document must be a Datadog definition: `schema-version: v2.2` or
//! `apiVersion: v3` documents are checked against Datadog's schema (unknown
//! top-level keys, required fields, types) whether or not Baton releases them,
//! because the same files are what gets pushed to Datadog. Only documents with
//! an `extensions.baton` block become [`ServiceEntry`]s. Documents of other
//! Datadog versions (v2, v2.1) without a Baton block are skipped unchecked;
//! with one they are an error. Service names must be unique across the whole
//! catalog, Baton's or not.

use super::files::{CATALOG_ROOT_ENV, Place, Root};
use super::freeze::{FREEZES_FILE, FreezeSpec, parse_freezes};
use super::shape::{DATADOG_V2_2, DATADOG_V3, DELIVERY, NAME, Registry, SERVICE_SPEC_V3, quoted_list};
use super::tree::{self, LoadError, MAX_TEXT_BYTES, Node};
use super::validate::{Checker, DOCUMENT, shown};
use super::{Delivery, Diagnostic, Link, SchemaVersion, ServiceEntry};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

const BATON: &str = "extensions.baton";

/// `schema-version`s Datadog still reads that Baton leaves alone (unless they carry its block).
const OLDER_VERSIONS: &[&str] = &["v2", "v2.1"];

/// Reads catalog texts and files against a [`Registry`] of providers, with the checks that
/// need files (see `files.rs`) when loading them.
#[derive(Clone, Copy)]
pub struct CatalogLoader<'r> {
    pub registry: &'r Registry,
    /// Directory every `working-dir` and `artifact-file` must stay inside (absolute paths
    /// inside it are allowed too). None: the repository holding the catalog (the nearest
    /// directory above it with a `.git`), else the catalog's own directory.
    pub root: Option<&'r Path>,
    /// Whether the catalog is for releases run on AWS, where providers that run on Baton's own
    /// machine (a local command) cannot work: they are refused, naming what to use instead.
    pub for_cloud: bool,
    /// Whether loading files makes the checks that need the filesystem (`files.rs`: working
    /// directories, paths inside the root, programs on PATH). A release needs them; a report needs
    /// only names, teams and repositories, and its machine need not have the release's programs.
    pub check_files: bool,
}

impl<'r> CatalogLoader<'r> {
    /// A loader for local releases, with the default root.
    pub fn new(registry: &'r Registry) -> CatalogLoader<'r> {
        CatalogLoader { registry, root: None, for_cloud: false, check_files: true }
    }

    /// A loader for reports (`baton dora`, `history`, `builds`, the dashboard): every check of
    /// [`CatalogLoader::new`] but those needing the filesystem, which were most of a 2,000-file
    /// catalog's load (a stat per PATH entry per program) and say nothing about past releases.
    pub fn for_reports(registry: &'r Registry) -> CatalogLoader<'r> {
        CatalogLoader { check_files: false, ..CatalogLoader::new(registry) }
    }

    /// Reads one text (a file's contents, a DynamoDB item, a Datadog API answer) that holds one
    /// or more documents. `file_label` names it in diagnostics and becomes
    /// [`ServiceEntry::source`]. Returns the valid Baton services and every problem.
    pub fn parse(&self, file_label: &str, text: &str) -> (Vec<ServiceEntry>, Vec<Diagnostic>) {
        let mut builder = self.builder();
        builder.add_text(file_label, text, None);
        let catalog = builder.finish();
        (catalog.services, catalog.diagnostics)
    }

    /// [`CatalogLoader::load`] with the root `BATON_CATALOG_ROOT` names when it is set and not empty.
    pub fn load_with_env_root(&self, path: &Path) -> std::io::Result<LoadedCatalog> {
        let root = env_root();
        self.rooted(root.as_deref()).load(path)
    }

    /// This loader with `root` instead of its own, when there is one.
    pub(crate) fn rooted<'a>(&self, root: Option<&'a Path>) -> CatalogLoader<'a>
    where
        'r: 'a,
    {
        CatalogLoader { root: root.or(self.root), ..*self }
    }

    /// The root every `working-dir` and `artifact-file` of the catalog at `path` must stay inside.
    pub(crate) fn root_of(&self, path: &Path) -> std::io::Result<Root> {
        match self.root {
            Some(root) => Root::explicit(root),
            None => Root::around(path),
        }
    }

    fn builder(&self) -> Builder<'r> {
        Builder { registry: self.registry, for_cloud: self.for_cloud, documents: Vec::new(), other: Vec::new(), files: 0, freezes: None }
    }

    /// Loads a catalog: a single file, or a directory searched recursively for
    /// `*.yaml`, `*.yml` and `*.json`, whose root's [`FREEZES_FILE`] holds the organisation's
    /// freeze windows, which every entry takes on (hidden entries and symlinked directories are
    /// skipped; a symlinked file leading out of the root is a diagnostic, not read). Fails only when `path` itself (or the root) cannot be read; an
    /// unreadable file inside a directory is a diagnostic.
    pub fn load(&self, path: &Path) -> std::io::Result<LoadedCatalog> {
        let (files, walked) = catalog_files(path)?;
        let root = self.root_of(path)?;
        let mut builder = self.builder();
        for file in &files {
            let label = file.display().to_string();
            // The directory relative paths resolve against, as the command providers resolve them;
            // without one the filesystem checks are not made.
            let dir = match self.check_files {
                true => std::path::absolute(file).ok().and_then(|f| std::fs::canonicalize(f.parent()?).ok()),
                false => None,
            };
            let place = dir.map(|dir| Place { dir, root: &root });
            if let Some(why) = root.refuses_file(file).filter(|_| walked) {
                builder.file_error(&label, why);
                continue;
            }
            let organisation = walked && file.parent() == Some(path) && file.file_name().is_some_and(|name| name == FREEZES_FILE);
            match read_text(file) {
                Ok(text) if organisation => builder.add_freezes(&label, &text),
                Ok(text) => builder.add_text(&label, &text, place.as_ref()),
                Err(message) => builder.file_error(&label, message),
            }
        }
        if files.is_empty() {
            let message = "expected Datadog service definitions, found no *.yaml, *.yml or *.json file".to_string();
            builder.file_error(&path.display().to_string(), message);
        }
        builder.files = files.len();
        Ok(builder.finish())
    }
}

/// The file's text, read no further than the size limit: a huge file costs no memory.
fn read_text(file: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    let read = std::fs::File::open(file).and_then(|f| f.take(MAX_TEXT_BYTES as u64 + 1).read_to_end(&mut bytes));
    read.map_err(|err| format!("cannot read the file: {err}"))?;
    if bytes.len() > MAX_TEXT_BYTES {
        let len = std::fs::metadata(file).map_or(bytes.len() as u64, |m| m.len());
        return Err(LoadError::too_large(len).message);
    }
    String::from_utf8(bytes).map_err(|_| "expected UTF-8 text".to_string())
}

/// `BATON_CATALOG_ROOT`, when it is set and not empty.
pub(crate) fn env_root() -> Option<std::path::PathBuf> {
    std::env::var_os(CATALOG_ROOT_ENV).filter(|root| !root.is_empty()).map(Into::into)
}

/// The files a catalog is read from, in the order they are read, and whether `path` is a
/// directory (searched) rather than one file.
pub(crate) fn catalog_files(path: &Path) -> std::io::Result<(Vec<std::path::PathBuf>, bool)> {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok((vec![path.to_path_buf()], false));
    }
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();
    Ok((files, true))
}

fn collect_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // file_type() does not follow symlinks: linked directories could loop.
        if entry.file_type()?.is_dir() {
            collect_files(&path, files)?;
        } else if path.is_file() && path.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json")) {
            files.push(path);
        }
    }
    Ok(())
}

/// A whole catalog, checked.
#[derive(Debug, Clone, Default)]
pub struct LoadedCatalog {
    services: Vec<ServiceEntry>,
    diagnostics: Vec<Diagnostic>,
    /// Baton services that are defined but invalid, with their problems.
    invalid: BTreeMap<String, Vec<Diagnostic>>,
    /// Services defined without a Baton block, with where.
    unmanaged: BTreeMap<String, String>,
    files: usize,
    /// The organisation's freeze file, when the catalog has one, and its windows.
    freezes: Option<(String, FreezeSpec)>,
}

/// What the catalog says about one service name.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<'a> {
    Found(&'a ServiceEntry),
    Invalid(&'a [Diagnostic]),
    /// Defined at this location, but without an `extensions.baton` block.
    Unmanaged(&'a str),
    Missing,
}

impl LoadedCatalog {
    /// The valid Baton services, in file order.
    pub fn services(&self) -> &[ServiceEntry] {
        &self.services
    }

    /// The Baton services defined but invalid, by name.
    pub fn invalid_services(&self) -> impl Iterator<Item = &str> {
        self.invalid.keys().map(String::as_str)
    }

    /// Every problem, ordered by file and line.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// How many files were read.
    pub fn files(&self) -> usize {
        self.files
    }

    /// The organisation's freeze file (as read) and its windows, which the services already include.
    pub fn freezes(&self) -> Option<(&str, &FreezeSpec)> {
        self.freezes.as_ref().map(|(file, spec)| (file.as_str(), spec))
    }

    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        if let Some(entry) = self.services.iter().find(|s| s.name == name) {
            Lookup::Found(entry)
        } else if let Some(diagnostics) = self.invalid.get(name) {
            Lookup::Invalid(diagnostics)
        } else if let Some(location) = self.unmanaged.get(name) {
            Lookup::Unmanaged(location)
        } else {
            Lookup::Missing
        }
    }
}

/// One checked document that names an entity.
struct Document {
    file: String,
    kind: String,
    name: String,
    line: usize,
    name_path: &'static str,
    baton: bool,
    entry: Option<ServiceEntry>,
    diagnostics: Vec<Diagnostic>,
}

struct Builder<'r> {
    registry: &'r Registry,
    for_cloud: bool,
    documents: Vec<Document>,
    /// Problems not tied to a named document (syntax errors, unreadable files, nameless documents).
    other: Vec<Diagnostic>,
    files: usize,
    freezes: Option<(String, FreezeSpec)>,
}

impl Builder<'_> {
    fn add_freezes(&mut self, file: &str, text: &str) {
        match parse_freezes(self.registry, file, text) {
            Ok(spec) => self.freezes = Some((file.to_string(), spec)),
            Err(diagnostics) => self.other.extend(diagnostics),
        }
    }

    fn file_error(&mut self, file: &str, message: String) {
        self.other.push(Diagnostic { file: file.to_string(), line: None, path: DOCUMENT.into(), message });
    }

    /// `place` is where the text's file is, when it is one: the filesystem checks need it.
    fn add_text(&mut self, file: &str, text: &str, place: Option<&Place>) {
        match tree::load(text) {
            // An empty file is more likely a mistake (a truncated write, a wrong path) than a catalog.
            Ok(nodes) if nodes.is_empty() => {
                self.file_error(file, "expected at least one Datadog service definition, found no YAML or JSON document".into());
            }
            Ok(nodes) => {
                for node in &nodes {
                    self.add_document(file, node, place);
                }
            }
            Err(err) => self.other.push(Diagnostic { file: file.to_string(), line: err.line, path: DOCUMENT.into(), message: err.message }),
        }
    }

    fn add_document(&mut self, file: &str, doc: &Node, place: Option<&Place>) {
        let mut checker = Checker::new(file, self.registry);
        let baton = doc.get("extensions").and_then(|e| e.get("baton"));
        let version = match (doc.get("schema-version"), doc.get("apiVersion")) {
            (None, None) => {
                let message = "expected a Datadog service definition (`schema-version: v2.2` or `apiVersion: v3`)";
                checker.error(doc.line, "", message);
                return self.other.extend(checker.diagnostics);
            }
            (Some(v), _) if v.as_str() == Some("v2.2") => SchemaVersion::V2_2,
            (None, Some(v)) if v.as_str() == Some("v3") => SchemaVersion::V3,
            (Some(v), _) if v.as_str().is_some_and(|v| OLDER_VERSIONS.contains(&v)) => {
                if baton.is_some() {
                    let message = "Baton reads `schema-version: v2.2` and `apiVersion: v3` definitions; \
                                   upgrade this one to carry `extensions.baton`";
                    checker.error(v.line, "schema-version", message);
                }
                return self.other.extend(checker.diagnostics);
            }
            (Some(v), _) | (None, Some(v)) => {
                let path = if doc.get("schema-version").is_some() { "schema-version" } else { "apiVersion" };
                let found = match v.as_str() {
                    Some(text) => format!("unknown {path} `{}`", shown(text)),
                    None => format!("expected a version string for {path}, found {}", v.kind_name()),
                };
                let message = format!(
                    "{found}: Baton reads `schema-version: v2.2` and `apiVersion: v3` definitions \
                     and skips Datadog's older {}",
                    quoted_list(OLDER_VERSIONS)
                );
                checker.error(v.line, path, message);
                return self.other.extend(checker.diagnostics);
            }
        };
        let (kind, name_node, name_path) = match version {
            SchemaVersion::V2_2 => {
                checker.object(doc, "", &DATADOG_V2_2);
                ("service", doc.get("dd-service"), "dd-service")
            }
            SchemaVersion::V3 => {
                checker.object(doc, "", &DATADOG_V3);
                let kind = doc.get("kind").and_then(Node::as_str).unwrap_or("");
                if let (Some(spec), "service") = (doc.get("spec"), kind) {
                    checker.object(spec, "spec", &SERVICE_SPEC_V3);
                }
                if baton.is_some() && kind != "service" {
                    let line = doc.get("kind").map_or(doc.line, |k| k.line);
                    checker.error(line, "kind", "expected `kind: service`: Baton releases services only");
                }
                (kind, doc.get("metadata").and_then(|m| m.get("name")), "metadata.name")
            }
        };
        let name = name_node.and_then(Node::as_str);
        if let (Some(baton), Some(name_node)) = (baton, name_node) {
            if let Some(Err(why)) = name.map(|n| NAME.check(n)) {
                let message = format!("expected {} (Baton uses service names in keys and paths); {why}", NAME.expected());
                checker.error(name_node.line, name_path, message);
            }
            checker.object(baton, BATON, &DELIVERY);
            checker.delivery_rules(baton, BATON);
            if self.for_cloud {
                checker.cloud_rules(baton, BATON);
            }
            if let Some(place) = place {
                place.check_commands(&mut checker, baton, BATON);
            }
        }
        let mut entry = None;
        if let (Some(baton), Some(name), true) = (baton, name, checker.diagnostics.is_empty()) {
            match build_entry(self.registry, file, version, doc, baton, name) {
                Ok(built) => entry = Some(built),
                Err(message) => checker.error(baton.line, BATON, message),
            }
        }
        match (name, name_node) {
            (Some(name), Some(name_node)) => self.documents.push(Document {
                file: file.to_string(),
                kind: kind.to_string(),
                name: name.to_string(),
                line: name_node.line,
                name_path,
                baton: baton.is_some(),
                entry,
                diagnostics: checker.diagnostics,
            }),
            _ => self.other.extend(checker.diagnostics),
        }
    }

    fn finish(mut self) -> LoadedCatalog {
        self.flag_duplicates();
        let mut catalog = LoadedCatalog { files: self.files, freezes: self.freezes, ..LoadedCatalog::default() };
        for doc in self.documents {
            catalog.diagnostics.extend(doc.diagnostics.iter().cloned());
            match (doc.entry, doc.baton) {
                (Some(mut entry), _) => {
                    if let Some((_, organisation)) = &catalog.freezes {
                        entry.delivery.freeze.include(organisation);
                    }
                    catalog.services.push(entry)
                }
                (None, true) => catalog.invalid.entry(doc.name).or_default().extend(doc.diagnostics),
                (None, false) => {
                    catalog.unmanaged.insert(doc.name, format!("{}:{}", doc.file, doc.line));
                }
            }
        }
        catalog.diagnostics.extend(self.other);
        catalog.diagnostics.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        catalog
    }

    /// Datadog requires unique names per kind; each copy names the others.
    fn flag_duplicates(&mut self) {
        let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        for (i, doc) in self.documents.iter().enumerate() {
            groups.entry((&doc.kind, &doc.name)).or_default().push(i);
        }
        let duplicates: Vec<Vec<usize>> = groups.into_values().filter(|group| group.len() > 1).collect();
        for group in duplicates {
            for &i in &group {
                let others: Vec<String> =
                    group.iter().filter(|&&j| j != i).map(|&j| format!("{}:{}", self.documents[j].file, self.documents[j].line)).collect();
                let doc = &mut self.documents[i];
                let message = format!(
                    "{} `{}` is also defined at {}: names must be unique across the catalog",
                    doc.kind,
                    doc.name,
                    others.join(", ")
                );
                doc.entry = None;
                doc.diagnostics.push(Diagnostic { file: doc.file.clone(), line: Some(doc.line), path: doc.name_path.into(), message });
            }
        }
    }
}

/// Deserialises the checked document into the model: the model, not the checker,
/// decides the final types and defaults, and each provider's typed block must take its block.
fn build_entry(
    registry: &Registry,
    file: &str,
    schema: SchemaVersion,
    doc: &Node,
    baton: &Node,
    name: &str,
) -> Result<ServiceEntry, String> {
    // serde's messages can quote values (and so secrets): report only that the model disagreed.
    let mismatch = |what: &str| format!("{what} passed validation but does not fit Baton's model (a Baton bug)");
    let delivery: Delivery = serde_json::from_value(baton.to_json()).map_err(|_| mismatch(BATON))?;
    for (slot, path, block) in delivery.provider_blocks() {
        let fits = registry.find(slot, &block.provider).is_some_and(|shape| (shape.through_model)(&block.settings_json()).is_ok());
        if !fits {
            return Err(mismatch(&format!("{BATON}.{path}")));
        }
    }
    let (team, links) = match schema {
        SchemaVersion::V2_2 => (doc.get("team"), doc.get("links")),
        SchemaVersion::V3 => {
            let metadata = doc.get("metadata");
            (metadata.and_then(|m| m.get("owner")), metadata.and_then(|m| m.get("links")))
        }
    };
    let links: Vec<Link> = match links {
        Some(links) => serde_json::from_value(links.to_json()).map_err(|_| mismatch("links"))?,
        None => Vec::new(),
    };
    Ok(ServiceEntry {
        name: name.to_string(),
        schema,
        team: delivery.team.clone().or_else(|| team.and_then(Node::as_str).map(str::to_string)),
        links,
        source: file.to_string(),
        delivery,
    })
}
