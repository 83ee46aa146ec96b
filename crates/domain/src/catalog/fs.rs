//! A catalog kept as files: a directory of definitions (or one file), loaded
//! once and then served from memory.

use super::ServiceEntry;
use super::parse::{CatalogLoader, LoadedCatalog, Lookup};
use super::shape::Registry;
use crate::ports::{CatalogError, CatalogSource};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

pub struct FsCatalog {
    root: PathBuf,
    catalog: LoadedCatalog,
}

impl FsCatalog {
    /// Loads every definition under `path`. The path is made absolute first, so
    /// each entry's `source` (and the relative paths resolved against it) stays
    /// valid whatever the process's working directory later is.
    pub fn open(registry: &Registry, path: impl AsRef<Path>) -> Result<FsCatalog, CatalogError> {
        let path = path.as_ref();
        let unavailable = |err: std::io::Error| CatalogError::unavailable(format!("cannot read catalog {}", path.display())).caused_by(err);
        let root = std::fs::canonicalize(path).map_err(unavailable)?;
        let catalog = CatalogLoader::new(registry).load_with_env_root(&root).map_err(unavailable)?;
        Ok(FsCatalog { root, catalog })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn catalog(&self) -> &LoadedCatalog {
        &self.catalog
    }
}

#[async_trait]
impl CatalogSource for FsCatalog {
    async fn service(&self, name: &str) -> Result<ServiceEntry, CatalogError> {
        let not_found = |detail: String| CatalogError::NotFound {
            service: name.to_string(),
            searched: format!("searched {} ({} files){detail}", self.root.display(), self.catalog.files()),
        };
        match self.catalog.lookup(name) {
            Lookup::Found(entry) => Ok(entry.clone()),
            Lookup::Invalid(diagnostics) => Err(CatalogError::Invalid(diagnostics.to_vec())),
            Lookup::Unmanaged(location) => Err(not_found(format!("; it is defined at {location} but has no `extensions.baton` block"))),
            Lookup::Missing => {
                let unparsed = self.catalog.diagnostics().iter().filter(|d| d.path == super::validate::DOCUMENT).count();
                Err(not_found(match unparsed {
                    0 => String::new(),
                    n => format!("; {n} document-level problems may hide it (run `baton catalog validate`)"),
                }))
            }
        }
    }
}
