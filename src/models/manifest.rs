//! The model manifest: which files make up the pack, where each comes from, and the facts its code needs.
//! The default pack is compiled in; a `manifest.json` in the models directory replaces it, which is how
//! a user plugs in models of their own.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const DEFAULT_MANIFEST: &str = include_str!("../../pack/manifest.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub runtime: PackEntry,
    pub models: Vec<PackEntry>,
    /// Data files the models' post-processing reads (the WordNet hierarchy); no sessions.
    #[serde(default)]
    pub data: Vec<PackEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PackEntry {
    pub id: String,
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub description: String,
    pub registry: String,
    #[serde(default)]
    pub package: String,
    #[serde(default)]
    pub version: String,
    pub file: String,
    /// Expected sha256 of the installed file; a user's own model may leave it out.
    pub sha256: Option<String>,
    pub license: String,
    /// A heavy model (hundreds of milliseconds a run): besides its sessions on the shared pool it gets
    /// one wide session with a pool of all cores, which a lone request's runs take.
    #[serde(default)]
    pub own_thread_pool: bool,
    /// Installed only on request (`vista models fetch --include ID`): a capability a deployment opts into.
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub facts: serde_json::Value,
}

/// What is on disk for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Present,
    Missing,
    HashMismatch { actual: String },
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text).context("the model manifest is not valid")
    }

    /// The manifest in `dir` if there is one, else the compiled-in default pack.
    pub fn for_dir(dir: &Path) -> Result<(Self, Option<PathBuf>)> {
        let custom = dir.join("manifest.json");
        if custom.exists() {
            let text = std::fs::read_to_string(&custom)
                .with_context(|| format!("reading {}", custom.display()))?;
            Ok((
                Self::parse(&text).with_context(|| custom.display().to_string())?,
                Some(custom),
            ))
        } else {
            Ok((Self::parse(DEFAULT_MANIFEST)?, None))
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = &PackEntry> {
        std::iter::once(&self.runtime)
            .chain(self.models.iter())
            .chain(self.data.iter())
    }

    pub fn model(&self, id: &str) -> Option<&PackEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    pub fn data_file(&self, task: &str) -> Option<&PackEntry> {
        self.data.iter().find(|d| d.task == task)
    }

    /// Every data file of a task, in the manifest's order.
    pub fn data_files<'a>(&'a self, task: &'a str) -> impl Iterator<Item = &'a PackEntry> {
        self.data.iter().filter(move |d| d.task == task)
    }
}

impl PackEntry {
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file)
    }

    /// Checks that the file exists and, when the manifest pins one, that its sha256 matches.
    pub fn check(&self, dir: &Path) -> Result<FileState> {
        let path = self.path(dir);
        if !path.is_file() {
            return Ok(FileState::Missing);
        }
        match &self.sha256 {
            Some(expected) => {
                let actual = sha256_file(&path)?;
                Ok(if &actual == expected {
                    FileState::Present
                } else {
                    FileState::HashMismatch { actual }
                })
            }
            None => Ok(FileState::Present),
        }
    }

    /// The entry's typed facts (input size, labels, ...), as its model code declares them.
    pub fn facts<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(self.facts.clone())
            .with_context(|| format!("facts of model '{}'", self.id))
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pack_names_a_runtime_and_a_detector_with_hashes() {
        let manifest = Manifest::parse(DEFAULT_MANIFEST).unwrap();
        assert_eq!(manifest.runtime.registry, "pypi");
        let detector = manifest.model("centernet").expect("detector in the pack");
        assert_eq!(detector.task, "objects");
        assert_eq!(detector.sha256.as_deref().map(str::len), Some(64));
        assert!(manifest.entries().all(|e| !e.license.is_empty()));
    }

    #[test]
    fn check_tells_missing_present_and_tampered_files_apart() {
        let dir = std::env::temp_dir().join(format!("vista-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut entry = Manifest::parse(DEFAULT_MANIFEST).unwrap().runtime;
        entry.file = "blob.bin".into();
        // sha256("hello")
        entry.sha256 =
            Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824".into());
        assert_eq!(entry.check(&dir).unwrap(), FileState::Missing);
        std::fs::write(dir.join("blob.bin"), "hello").unwrap();
        assert_eq!(entry.check(&dir).unwrap(), FileState::Present);
        std::fs::write(dir.join("blob.bin"), "hellO").unwrap();
        assert!(matches!(
            entry.check(&dir).unwrap(),
            FileState::HashMismatch { .. }
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
