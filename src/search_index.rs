//! The search index of `vista index` / `vista search`: one JSON file holding, for each image file, its
//! search vector and what it was made from (size and modification time, so an unchanged file is not
//! embedded again). The file names the vector model: vectors of another model are not mixed in.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchIndex {
    pub model_version: String,
    /// By file path: one entry per file, found without a scan.
    pub images: BTreeMap<String, IndexedImage>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexedImage {
    pub size: u64,
    /// Seconds since the epoch.
    pub modified: u64,
    pub vector: Vec<f32>,
}

/// File names the indexer reads as images.
pub const IMAGE_EXTENSIONS: [&str; 11] = [
    "jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff", "ico", "mpo", "jfif",
];

impl SearchIndex {
    /// The index at `path`, or an empty one for `model_version` if there is none yet. An index made
    /// by another model is an error: its vectors do not compare with this model's.
    pub fn open(path: &Path, model_version: &str) -> Result<Self> {
        let index = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<SearchIndex>(&bytes)
                .with_context(|| format!("{} is not a vista search index", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SearchIndex {
                model_version: model_version.to_string(),
                images: BTreeMap::new(),
            },
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if index.model_version != model_version {
            bail!(
                "{} holds vectors of '{}', but this server makes '{model_version}': delete it and index again",
                path.display(),
                index.model_version
            );
        }
        Ok(index)
    }

    /// Writes the index through a temporary file, so an interrupted run leaves the old one intact.
    pub fn save(&self, path: &Path) -> Result<()> {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, serde_json::to_vec(self)?)
            .with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, path).with_context(|| format!("replacing {}", path.display()))
    }

    /// Whether `path` is indexed with this size and modification time.
    pub fn is_current(&self, path: &str, size: u64, modified: u64) -> bool {
        self.images
            .get(path)
            .is_some_and(|i| i.size == size && i.modified == modified)
    }

    /// Adds an image, replacing an older entry of the same path.
    pub fn insert(&mut self, path: String, image: IndexedImage) {
        self.images.insert(path, image);
    }

    /// The `top` images nearest `query` (cosine similarity of unit vectors), best first.
    pub fn search(&self, query: &[f32], top: usize) -> Vec<(&str, f32)> {
        let mut scored: Vec<(&str, f32)> = self
            .images
            .iter()
            .map(|(path, i)| {
                let score = i.vector.iter().zip(query).map(|(a, b)| a * b).sum();
                (path.as_str(), score)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(top);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(vector: [f32; 2]) -> IndexedImage {
        IndexedImage {
            size: 1,
            modified: 2,
            vector: vector.to_vec(),
        }
    }

    #[test]
    fn search_ranks_by_similarity_and_entries_are_replaced() {
        let mut index = SearchIndex {
            model_version: "m".into(),
            images: BTreeMap::new(),
        };
        index.insert("a.jpg".into(), image([1.0, 0.0]));
        index.insert("b.jpg".into(), image([0.0, 1.0]));
        index.insert("a.jpg".into(), image([0.6, 0.8]));
        assert_eq!(index.images.len(), 2);
        let found = index.search(&[0.0, 1.0], 5);
        assert_eq!(
            found.iter().map(|f| f.0).collect::<Vec<_>>(),
            ["b.jpg", "a.jpg"]
        );
        assert!((found[1].1 - 0.8).abs() < 1e-6);
        assert!(index.is_current("a.jpg", 1, 2) && !index.is_current("a.jpg", 1, 3));
    }

    #[test]
    fn an_index_keeps_its_model_and_survives_a_round_trip() {
        let dir = std::env::temp_dir().join(format!("vista-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("index.json");
        let mut index = SearchIndex::open(&path, "m1").unwrap();
        index.insert("a.jpg".into(), image([1.0, 0.0]));
        index.save(&path).unwrap();
        assert_eq!(SearchIndex::open(&path, "m1").unwrap().images, index.images);
        assert!(
            SearchIndex::open(&path, "m2").is_err(),
            "another model's index is refused"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
