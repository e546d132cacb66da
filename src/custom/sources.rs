//! Where a dataset's files come from: annotation files and images by URL, through the guarded URL
//! client (http/https; private addresses only when the deployment allows them), a SAS token appended
//! when the dataset says so; or, for self-hosted users who keep images on disk, by a path relative
//! to the folder the deployment names (`--datasets-dir`), never outside it.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::coco::LabelledImage;
use super::train::ImageLoader;
use crate::fetch::{FetchError, UrlFetcher};
use crate::pipeline::decode::TRAINING;

/// The largest annotation file read: a COCO file for Azure's 200,000 detection images with a few
/// boxes each is about 60 MB; parsing holds several times a file's size in memory.
pub const MAX_ANNOTATION_BYTES: usize = 64 * 1024 * 1024;

/// How the dataset's URLs are opened (Azure's `authentication`): `none` and `managedIdentity` fetch
/// them as they are; `sas` appends the token's query to each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Access {
    pub kind: String,
    pub sas_token: Option<String>,
}

/// Opens dataset files: URLs through the fetcher, relative paths under the datasets folder.
#[derive(Clone)]
pub struct Sources {
    pub fetcher: Arc<UrlFetcher>,
    pub datasets_dir: Option<PathBuf>,
}

/// A location is a URL when it has a scheme; anything else is a path in the datasets folder.
pub fn is_url(location: &str) -> bool {
    location.contains("://")
}

impl Sources {
    /// The file at `location` (a URL, or a path relative to the datasets folder), at most `max` bytes.
    pub async fn read(
        &self,
        location: &str,
        access: &Access,
        max: usize,
    ) -> Result<Vec<u8>, String> {
        if is_url(location) {
            let url = with_sas(location, access);
            return self
                .fetcher
                .fetch(&url, max)
                .await
                .map(|b| b.to_vec())
                .map_err(|e| match e {
                    FetchError::NotAccessible(reason) => reason,
                    FetchError::TooLarge(max) => format!("larger than {max} bytes"),
                });
        }
        let path = self.local(location)?;
        let size = std::fs::metadata(&path)
            .map_err(|_| format!("'{location}' is not a file in the datasets folder"))?
            .len();
        if size as usize > max {
            return Err(format!("'{location}' is larger than {max} bytes"));
        }
        tokio::fs::read(&path)
            .await
            .map_err(|e| format!("'{location}': {e}"))
    }

    /// Whether `location` answers (an image checked at registration): a local file must exist; a
    /// URL is fetched.
    pub async fn reachable(&self, location: &str, access: &Access) -> Result<(), String> {
        if is_url(location) {
            return self
                .read(location, access, TRAINING.max_bytes)
                .await
                .map(drop);
        }
        let path = self.local(location)?;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(()),
            _ => Err(format!("'{location}' is not a file in the datasets folder")),
        }
    }

    /// The path of `relative` inside the datasets folder; refused without a folder, for absolute
    /// paths and for any `..`.
    fn local(&self, relative: &str) -> Result<PathBuf, String> {
        let Some(root) = &self.datasets_dir else {
            return Err(format!(
                "'{relative}' is not an http(s) URL, and this server has no datasets folder (--datasets-dir)"
            ));
        };
        let path = Path::new(relative);
        if !path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "'{relative}' must be a relative path inside the datasets folder"
            ));
        }
        Ok(root.join(path))
    }
}

/// `location` with the SAS token's query appended, for `sas` access.
fn with_sas(location: &str, access: &Access) -> String {
    match (&access.sas_token, access.kind.eq_ignore_ascii_case("sas")) {
        (Some(token), true) => {
            let token = token.trim_start_matches('?');
            let joiner = if location.contains('?') { '&' } else { '?' };
            format!("{location}{joiner}{token}")
        }
        _ => location.to_string(),
    }
}

/// Where an image named in an annotation file lives: a URL as it is; a local name next to its local
/// annotation file.
pub fn image_location(annotation_file: &str, image: &str) -> String {
    if is_url(image) || is_url(annotation_file) {
        return image.to_string();
    }
    match Path::new(annotation_file).parent() {
        Some(folder) if !folder.as_os_str().is_empty() => {
            folder.join(image).to_string_lossy().into_owned()
        }
        _ => image.to_string(),
    }
}

/// Loads training images from a blocking thread, on the server's runtime.
pub struct BlockingLoader {
    pub sources: Sources,
    pub access: Access,
    pub runtime: tokio::runtime::Handle,
}

impl ImageLoader for BlockingLoader {
    fn load(&self, image: &LabelledImage) -> Result<Vec<u8>, String> {
        self.runtime.block_on(
            self.sources
                .read(&image.location, &self.access, TRAINING.max_bytes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_stay_inside_the_datasets_folder() {
        let sources = Sources {
            fetcher: Arc::new(UrlFetcher::new(false).unwrap()),
            datasets_dir: Some(PathBuf::from("/data/sets")),
        };
        assert_eq!(
            sources.local("pets/a.jpg").unwrap(),
            PathBuf::from("/data/sets/pets/a.jpg")
        );
        assert!(sources.local("../etc/passwd").is_err());
        assert!(sources.local("/etc/passwd").is_err());
        assert!(sources.local("pets/../../x").is_err());
        let none = Sources {
            datasets_dir: None,
            ..sources
        };
        assert!(none
            .local("pets/a.jpg")
            .unwrap_err()
            .contains("--datasets-dir"));
    }

    #[test]
    fn images_sit_next_to_their_annotation_file_and_sas_tokens_are_appended() {
        assert_eq!(
            image_location("pets/train.json", "cat1.jpg"),
            "pets/cat1.jpg"
        );
        assert_eq!(image_location("train.json", "cat1.jpg"), "cat1.jpg");
        assert_eq!(
            image_location("https://x/train.json", "https://x/a.jpg"),
            "https://x/a.jpg"
        );
        let sas = Access {
            kind: "sas".into(),
            sas_token: Some("?sv=1&sig=abc".into()),
        };
        assert_eq!(
            with_sas("https://x/a.jpg", &sas),
            "https://x/a.jpg?sv=1&sig=abc"
        );
        assert_eq!(
            with_sas("https://x/a.jpg?v=2", &sas),
            "https://x/a.jpg?v=2&sv=1&sig=abc"
        );
        let none = Access {
            kind: "managedIdentity".into(),
            sas_token: None,
        };
        assert_eq!(with_sas("https://x/a.jpg", &none), "https://x/a.jpg");
    }
}
