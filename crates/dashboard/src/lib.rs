//! The release dashboard: every view of the read model ([`baton_domain::reports`]) as one HTML
//! page, with its charts drawn as SVG here and its styles and script embedded, so nothing is
//! fetched from the network at view time. The same pages are served live ([`serve`]) and written
//! as a static site ([`export`]): their paths are the same, and links between them are relative.

mod pages;
mod server;
mod svg;

pub use baton_domain::ports::ExecutionHistories;
pub use server::{ServeError, serve};

use baton_domain::catalog::ServiceEntry;
use baton_domain::ports::{ReleaseStore, StoreError};
use baton_domain::release::ReleaseId;
use baton_domain::reports;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// The events a release page shows of its execution: a page stays light, and the first events
/// are where a release's stages begin (a long watch repeats the same few states).
pub const HISTORY_EVENTS: usize = 500;

/// What the pages are drawn from.
pub struct Site {
    store: Arc<dyn ReleaseStore>,
    histories: Option<Arc<dyn ExecutionHistories>>,
    entries: Vec<ServiceEntry>,
    /// The window of the DORA figures and the build report.
    days: u64,
    /// Seconds between a served page's live updates; 0 for a static export.
    refresh_seconds: u64,
}

/// A page: its HTML, or a JSON document for the `api/` paths.
#[derive(Clone)]
pub struct Page {
    pub body: String,
    pub content_type: &'static str,
}

impl Site {
    pub fn new(store: Arc<dyn ReleaseStore>, mut entries: Vec<ServiceEntry>, days: u64) -> Site {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Site { store, histories: None, entries, days: days.max(1), refresh_seconds: 0 }
    }

    /// Release pages show each execution's history from `histories`.
    pub fn with_histories(mut self, histories: Arc<dyn ExecutionHistories>) -> Site {
        self.histories = Some(histories);
        self
    }

    /// How long a served page may be answered again without reading the store: the refresh
    /// interval, so any number of open tabs cost one read of each page per interval.
    pub(crate) fn freshness(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.refresh_seconds.max(1))
    }

    /// Served pages fetch themselves again every `seconds`.
    pub fn refreshing_every(mut self, seconds: u64) -> Site {
        self.refresh_seconds = seconds;
        self
    }

    fn entry(&self, service: &str) -> Option<&ServiceEntry> {
        self.entries.iter().find(|e| e.name == service)
    }

    fn teams(&self) -> BTreeSet<&str> {
        self.entries.iter().filter_map(reports::team_of).collect()
    }

    /// The repositories the catalog's entries declare (`owner/name`), a shared one once.
    fn repositories(&self) -> BTreeSet<String> {
        self.entries.iter().flat_map(|e| e.repositories()).map(str::to_lowercase).collect()
    }

    /// The page at `path` (as [`Site::paths`] lists them, or `api/...json`), `None` when there is none.
    pub async fn page(&self, path: &str, now: DateTime<Utc>) -> Result<Option<Page>, StoreError> {
        let html = |body: String| Some(Page { body, content_type: "text/html; charset=utf-8" });
        let json = |value: serde_json::Value| Some(Page { body: value.to_string(), content_type: "application/json" });
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "index.html" {
            let now_report = reports::now(self.store.as_ref(), &self.entries, now).await?;
            return Ok(html(pages::now(self, &now_report)));
        }
        if path == "api/now.json" {
            let now_report = reports::now(self.store.as_ref(), &self.entries, now).await?;
            return Ok(json(serde_json::to_value(now_report).unwrap_or_default()));
        }
        if path == "organisation.html" {
            let members: Vec<&ServiceEntry> = self.entries.iter().collect();
            let report = self.group("organisation", "all services", &members, now).await?;
            return Ok(html(pages::group(self, &report, 0)));
        }
        if let Some(service) = page_name(path, "services/") {
            let Some(entry) = self.entry(&service) else { return Ok(None) };
            let report = reports::service(self.store.as_ref(), entry, self.days, now).await?;
            return Ok(html(pages::service(self, entry, &report, 1)));
        }
        if let Some(service) = path.strip_prefix("api/services/").and_then(|p| p.strip_suffix(".json")).map(unslug) {
            let Some(entry) = self.entry(&service) else { return Ok(None) };
            let report = reports::service(self.store.as_ref(), entry, self.days, now).await?;
            return Ok(json(serde_json::to_value(report).unwrap_or_default()));
        }
        if let Some(team) = page_name(path, "teams/") {
            let members: Vec<&ServiceEntry> = self.entries.iter().filter(|e| reports::team_of(e) == Some(team.as_str())).collect();
            if members.is_empty() {
                return Ok(None);
            }
            let report = self.group("team", &team, &members, now).await?;
            return Ok(html(pages::group(self, &report, 1)));
        }
        if let Some(repository) = page_name(path, "repositories/") {
            let members: Vec<&ServiceEntry> = self.entries.iter().filter(|e| e.declares_repository(&repository)).collect();
            if members.is_empty() {
                return Ok(None);
            }
            let report = self.group("repository", &repository, &members, now).await?;
            return Ok(html(pages::group(self, &report, 1)));
        }
        if let Some(id) = page_name(path, "releases/") {
            let id = ReleaseId(id);
            let Some(service) = self.release_service(&id).await? else { return Ok(None) };
            let Some(report) = reports::release(self.store.as_ref(), &id, self.entry(&service), now).await? else { return Ok(None) };
            // A history that cannot be read (expired on AWS after 90 days, no permission) is
            // said on the page, which still shows the release record.
            let history = match (&self.histories, report.release.execution.as_deref()) {
                (Some(histories), Some(execution)) => Some(histories.history(execution, HISTORY_EVENTS).await),
                _ => None,
            };
            return Ok(html(pages::release(self, &report, history, 1)));
        }
        Ok(None)
    }

    async fn release_service(&self, id: &ReleaseId) -> Result<Option<String>, StoreError> {
        Ok(self.store.get_release(id).await?.map(|r| r.service))
    }

    async fn group(
        &self,
        scope: &str,
        name: &str,
        members: &[&ServiceEntry],
        now: DateTime<Utc>,
    ) -> Result<reports::GroupReport, StoreError> {
        // A group's figures are in the environment most of its services release to.
        let environment = members.first().map_or("production", |e| e.delivery.environment.as_str());
        let names: Vec<&str> = members.iter().map(|e| e.name.as_str()).collect();
        reports::group(self.store.as_ref(), scope, name, &names, environment, self.days, now).await
    }

    /// Every page of the site: the Now view, the organisation, each team, each service and each
    /// release on a service's timeline.
    pub async fn paths(&self) -> Result<Vec<String>, StoreError> {
        let mut paths = vec!["index.html".to_owned(), "organisation.html".to_owned()];
        paths.extend(self.teams().into_iter().map(|team| format!("teams/{}.html", slug(team))));
        paths.extend(self.repositories().iter().map(|repository| format!("repositories/{}.html", slug(repository))));
        for entry in &self.entries {
            paths.push(format!("services/{}.html", slug(&entry.name)));
            for release in self.store.list_releases(&entry.name, None, reports::TIMELINE_LENGTH).await? {
                paths.push(format!("releases/{}.html", slug(&release.id.0)));
            }
        }
        Ok(paths)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Writes every page of `site` under `dir` as a static site; returns how many pages.
pub async fn export(site: &Site, dir: &Path, now: DateTime<Utc>) -> Result<usize, ExportError> {
    let paths = site.paths().await?;
    for path in &paths {
        let Some(page) = site.page(path, now).await? else { continue };
        let file = dir.join(path);
        let write = |file: &Path| -> std::io::Result<()> {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(file, &page.body)
        };
        write(&file).map_err(|source| ExportError::Write { path: file.display().to_string(), source })?;
    }
    Ok(paths.len())
}

/// `name` as one path segment that is safe in a URL and a file name on any system, and reversible:
/// letters, digits, `-`, `_` and `.` stay, every other byte is `~` and two hex digits.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => out.push(char::from(byte)),
            // A leading dot would make `.` and `..` segments.
            b'.' if !out.is_empty() => out.push('.'),
            _ => out.push_str(&format!("~{byte:02x}")),
        }
    }
    out
}

/// The name [`slug`] made `text` from; bytes that are not a valid escape are kept as they are.
pub fn unslug(text: &str) -> String {
    baton_domain::text::decode_escapes(text, b'~')
}

/// The name in `<prefix><slug>.html`.
fn page_name(path: &str, prefix: &str) -> Option<String> {
    path.strip_prefix(prefix).and_then(|rest| rest.strip_suffix(".html")).filter(|s| !s.contains('/')).map(unslug)
}

#[cfg(test)]
mod site_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_reversible_and_safe_as_one_segment() {
        for name in ["hello-web", "rel-hello-web-20261206T101010-ab12", "a/b", "..", ".hidden", "ünï côde", "x~y", "%2e%2e"] {
            let s = slug(name);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)), "{s}");
            assert!(!s.starts_with('.'), "{s}");
            assert_eq!(unslug(&s), name);
        }
    }

    #[test]
    fn only_pages_of_the_site_have_names() {
        assert_eq!(page_name("services/hello-web.html", "services/").as_deref(), Some("hello-web"));
        assert_eq!(page_name("services/a/b.html", "services/"), None);
        assert_eq!(page_name("services/x.json", "services/"), None);
    }
}
