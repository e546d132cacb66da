//! Cloud Storage on a local disk: `gs://BUCKET/PATH` is `ROOT/BUCKET/PATH` under
//! `--google-storage-root`, for a bucket whose directory exists there; nothing climbs out of it.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use super::error::{Code, Status};

/// `DIR/BUCKET/PATH` of `gs://BUCKET/PATH`, when the bucket is mapped (its directory exists).
pub fn mapped(root: Option<&Path>, uri: &str) -> Result<PathBuf, Status> {
    let refuse = |why: String| Err(Status::new(Code::FailedPrecondition, why));
    let Some(root) = root else {
        return refuse(format!("{uri}: this server maps no Cloud Storage buckets (start it with --google-storage-root)"));
    };
    let Some(path) = uri.strip_prefix("gs://") else {
        return Err(Status::invalid(format!("'{uri}' is not a gs:// URI")));
    };
    let (bucket, object) = path.split_once('/').unwrap_or((path, ""));
    let safe = |p: &str| {
        Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    };
    if bucket.is_empty()
        || !safe(bucket)
        || !(object.is_empty() || safe(object.trim_end_matches('/')))
    {
        return Err(Status::invalid(format!(
            "'{uri}' is not a valid object name"
        )));
    }
    if !root.join(bucket).is_dir() {
        return refuse(format!(
            "the bucket '{bucket}' is not mapped: no directory {}",
            root.join(bucket).display()
        ));
    }
    Ok(root.join(bucket).join(object))
}

/// The object at `path`, at most `max` bytes (checked before it is read).
fn read_object_sync(path: &Path, max: usize, uri: &str) -> Result<Bytes, Status> {
    let missing = || Status::new(Code::NotFound, format!("{uri} does not exist."));
    let size = std::fs::metadata(path).map_err(|_| missing())?.len();
    if size > max as u64 {
        return Err(Status::invalid(format!(
            "{uri} is larger than {max} bytes."
        )));
    }
    Ok(Bytes::from(std::fs::read(path).map_err(|_| missing())?))
}

/// [`read_object_sync`] off the async threads.
pub async fn read_object(path: &Path, max: usize, uri: &str) -> Result<Bytes, Status> {
    let (path, uri) = (path.to_path_buf(), uri.to_string());
    tokio::task::spawn_blocking(move || read_object_sync(&path, max, &uri))
        .await
        .map_err(|_| Status::new(Code::Internal, "Internal error."))?
}
