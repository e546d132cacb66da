//! Customer data, kept safely: a [`Vault`] seals every value with AES-256-GCM under its table and id
//! (so a value moved elsewhere fails to open) in a [`Backend`]: an embedded redb file in the data
//! directory, or Redis shared by several replicas. Read operations ([`OperationStore`]) keep their
//! record and, until it is processed, their document, and are deleted when their time to live ends
//! (a sweeper, and a check on every read; Redis also expires keys itself); a restart finds the
//! operations this replica accepted that were queued or running and hands them back for processing.
//! Customization keeps its datasets, models and features here too (see `custom::records`).

mod embedded;
mod redis;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

pub use self::embedded::Embedded;
pub use self::redis::Redis;

const NONCE_BYTES: usize = 12;
/// The id of the sealed check value that tells whether a key is the store's own.
const KEY_CHECK_ID: &str = "key-check";
const KEY_CHECK_TEXT: &[u8] = b"vista read operation store";

/// What a sealed value is: the two kinds of value a Read operation has, the store's own values (its
/// key check), and the customization data (datasets, models and their trained heads, evaluations,
/// cached image features, product-recognition runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Records,
    Documents,
    Meta,
    Datasets,
    Models,
    Heads,
    Evaluations,
    Features,
    Runs,
}

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Records,
        Table::Documents,
        Table::Meta,
        Table::Datasets,
        Table::Models,
        Table::Heads,
        Table::Evaluations,
        Table::Features,
        Table::Runs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Records => "records",
            Table::Documents => "documents",
            Table::Meta => "meta",
            Table::Datasets => "datasets",
            Table::Models => "models",
            Table::Heads => "heads",
            Table::Evaluations => "evaluations",
            Table::Features => "features",
            Table::Runs => "runs",
        }
    }

    /// The part of vista the table belongs to (a Redis key prefix).
    pub fn family(self) -> &'static str {
        match self {
            Table::Records | Table::Documents | Table::Meta => "read",
            _ => "custom",
        }
    }
}

/// Where sealed values live. A value written with a finite expiry may be dropped by the backend after
/// it; one written with an infinite expiry is kept.
pub trait Backend: Send + Sync {
    /// Whether the backend answers now (for `/ready`).
    fn check(&self) -> Result<()>;
    fn put(&self, table: Table, id: &str, value: &[u8], expires: f64) -> Result<()>;
    /// Like `put`, but only when `id` has no value yet, atomically (two replicas creating one name
    /// at once: one wins); false when it had one.
    fn put_new(&self, table: Table, id: &str, value: &[u8], expires: f64) -> Result<bool>;
    fn get(&self, table: Table, id: &str) -> Result<Option<Vec<u8>>>;
    fn remove(&self, table: Table, id: &str) -> Result<()>;
    /// The ids that have a value in `table`.
    fn ids(&self, table: Table) -> Result<Vec<String>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    NotStarted,
    Running,
    Succeeded,
    Failed,
}

/// What the store knows of an operation. `result` is the API's `analyzeResult` once it succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub status: Status,
    /// Unix seconds.
    pub created: f64,
    pub updated: f64,
    pub expires: f64,
    /// The replica that accepted the operation and processes it.
    #[serde(default)]
    pub owner: String,
    /// The request's parameters, for the worker.
    pub params: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// A backend whose every value is sealed with AES-256-GCM, the table and id bound in as associated
/// data (a value moved to another id or table fails to open). Shared by the Read operations and the
/// customization data, so one key and one backend hold all customer data.
pub struct Vault {
    backend: Box<dyn Backend>,
    cipher: Aes256Gcm,
}

pub struct OperationStore {
    vault: Arc<Vault>,
    ttl: Duration,
    /// This replica's name: the operations it accepted are its to process.
    replica: String,
}

/// Runs blocking store work on `store` off the async threads; a panic in it is an error like any
/// other (the callers answer both as "store unavailable").
pub async fn off_thread<S, T>(
    store: Arc<S>,
    work: impl FnOnce(&S) -> Result<T> + Send + 'static,
) -> Result<T>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || work(&store)).await?
}

/// How often expired records are looked for and deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Starts the task that, every [`SWEEP_EVERY`], runs `sweep` on `store` off the async threads and
/// logs how many expired `what` (e.g. "read operations") it deleted.
pub fn spawn_sweeper<S: Send + Sync + 'static>(
    store: Arc<S>,
    what: &'static str,
    sweep: fn(&S) -> Result<usize>,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            match off_thread(Arc::clone(&store), sweep).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "expired {what} deleted"),
                Err(e) => tracing::error!("sweeping {what} failed: {e:#}"),
            }
        }
    });
}

/// Unix seconds now: the clock of operations' `created` and `updated`.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The 32-byte key in `path`, created (random, mode 0600) if the file does not exist.
pub fn key_file(path: &Path) -> Result<[u8; 32]> {
    if !path.exists() {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(hex::encode(key).as_bytes())?;
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_key(text.trim())
}

/// The replica name in `path`, made (random) if the file does not exist.
pub fn replica_file(path: &Path) -> Result<String> {
    if !path.exists() {
        std::fs::write(path, uuid::Uuid::new_v4().to_string())
            .with_context(|| format!("creating {}", path.display()))?;
    }
    let name =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(name.trim().to_string())
}

/// A key given as 64 hex digits.
pub fn parse_key(hex_text: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(hex_text).context("the store key must be 64 hex digits")?;
    bytes
        .try_into()
        .map_err(|_| anyhow!("the store key must be 64 hex digits (32 bytes)"))
}

impl Vault {
    pub fn new(backend: Box<dyn Backend>, key: [u8; 32]) -> Self {
        Vault {
            backend,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    /// Refuses a key that is not the one the store was written with, before anything is read, swept
    /// or written: a wrong key would make every operation look unreadable. A store without a check
    /// value (new, or written before it existed) gets one, once the key opens an existing record.
    pub fn verify_key(&self) -> Result<()> {
        let wrong_key = || {
            anyhow!(
                "the store key (VISTA_STORE_KEY, or store.key in the data directory) does not open \
                 this operation store: it is not the key the store was written with. Start with the \
                 right key; nothing was read or deleted"
            )
        };
        if let Some(sealed) = self.backend.get(Table::Meta, KEY_CHECK_ID)? {
            return match self.open_sealed(KEY_CHECK_ID, Table::Meta, &sealed) {
                Ok(text) if text == KEY_CHECK_TEXT => Ok(()),
                _ => Err(wrong_key()),
            };
        }
        if let Some(id) = self.backend.ids(Table::Records)?.first() {
            if let Some(sealed) = self.backend.get(Table::Records, id)? {
                self.open_sealed(id, Table::Records, &sealed)
                    .map_err(|_| wrong_key())?;
            }
        }
        let check = self.seal(KEY_CHECK_ID, Table::Meta, KEY_CHECK_TEXT)?;
        self.backend
            .put(Table::Meta, KEY_CHECK_ID, &check, f64::INFINITY)
    }

    /// Whether the backend answers now.
    pub fn check(&self) -> Result<()> {
        self.backend.check()
    }

    fn seal(&self, id: &str, table: Table, plain: &[u8]) -> Result<Vec<u8>> {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let aad = format!("{}/{id}", table.name());
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| anyhow!("encryption failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    fn open_sealed(&self, id: &str, table: Table, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_BYTES {
            bail!("operation {id}: stored value is truncated");
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let aad = format!("{}/{id}", table.name());
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow!("operation {id}: stored value fails authentication (wrong key or tampered)")
            })
    }

    /// Seals `plain` and keeps it under `table`/`id` until `expires` (Unix seconds; infinite: kept).
    pub fn put(&self, table: Table, id: &str, plain: &[u8], expires: f64) -> Result<()> {
        let sealed = self.seal(id, table, plain)?;
        self.backend.put(table, id, &sealed, expires)
    }

    /// Seals `plain` under `table`/`id` only if nothing is there yet; false when something was.
    pub fn put_new(&self, table: Table, id: &str, plain: &[u8], expires: f64) -> Result<bool> {
        let sealed = self.seal(id, table, plain)?;
        self.backend.put_new(table, id, &sealed, expires)
    }

    /// The opened value under `table`/`id`, if there is one.
    pub fn get(&self, table: Table, id: &str) -> Result<Option<Vec<u8>>> {
        match self.backend.get(table, id)? {
            Some(sealed) => Ok(Some(self.open_sealed(id, table, &sealed)?)),
            None => Ok(None),
        }
    }

    /// `value` as JSON, sealed, kept until deleted.
    pub fn put_json<T: Serialize>(&self, table: Table, id: &str, value: &T) -> Result<()> {
        self.put(table, id, &serde_json::to_vec(value)?, f64::INFINITY)
    }

    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        id: &str,
    ) -> Result<Option<T>> {
        self.get(table, id)?
            .map(|plain| {
                serde_json::from_slice(&plain).with_context(|| format!("{}/{id}", table.name()))
            })
            .transpose()
    }

    pub fn remove(&self, table: Table, id: &str) -> Result<()> {
        self.backend.remove(table, id)
    }

    pub fn ids(&self, table: Table) -> Result<Vec<String>> {
        self.backend.ids(table)
    }
}

impl OperationStore {
    pub fn new(vault: Arc<Vault>, ttl: Duration, replica: &str) -> Self {
        OperationStore {
            vault,
            ttl,
            replica: replica.to_string(),
        }
    }

    /// Whether the backend answers now.
    pub fn check(&self) -> Result<()> {
        self.vault.check()
    }

    /// Accepts a document: a new operation, `notStarted`, with the document kept until it is processed.
    pub fn create(&self, id: &str, document: &[u8], params: serde_json::Value) -> Result<Record> {
        let at = now();
        let record = Record {
            status: Status::NotStarted,
            created: at,
            updated: at,
            expires: at + self.ttl.as_secs_f64(),
            owner: self.replica.clone(),
            params,
            result: None,
            error: None,
        };
        self.vault
            .put(Table::Documents, id, document, record.expires)?;
        self.put(id, &record)?;
        Ok(record)
    }

    /// The operation's record, or None if there is none or it expired (then it is deleted here).
    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        let Some(plain) = self.vault.get(Table::Records, id)? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&plain)?;
        if record.expires <= now() {
            self.delete(id)?;
            return Ok(None);
        }
        Ok(Some(record))
    }

    fn put(&self, id: &str, record: &Record) -> Result<()> {
        self.vault.put(
            Table::Records,
            id,
            &serde_json::to_vec(record)?,
            record.expires,
        )
    }

    /// Marks the operation running and hands over its document (None if it is gone or expired).
    pub fn start(&self, id: &str) -> Result<Option<(Record, Vec<u8>)>> {
        let Some(mut record) = self.get(id)? else {
            return Ok(None);
        };
        let Some(document) = self.vault.get(Table::Documents, id)? else {
            return Ok(None);
        };
        record.status = Status::Running;
        record.updated = now();
        self.put(id, &record)?;
        Ok(Some((record, document)))
    }

    /// Records the outcome and deletes the document: nothing of the input outlives its processing.
    pub fn finish(
        &self,
        id: &str,
        outcome: std::result::Result<serde_json::Value, String>,
    ) -> Result<()> {
        let Some(mut record) = self.get(id)? else {
            return Ok(());
        };
        record.updated = now();
        match outcome {
            Ok(result) => (record.status, record.result) = (Status::Succeeded, Some(result)),
            Err(error) => (record.status, record.error) = (Status::Failed, Some(error)),
        }
        self.put(id, &record)?;
        self.vault.remove(Table::Documents, id)
    }

    fn delete(&self, id: &str) -> Result<()> {
        self.vault.remove(Table::Documents, id)?;
        self.vault.remove(Table::Records, id)
    }

    /// Deletes every expired operation; returns how many. A value that cannot be opened is left alone
    /// and reported: only an operation whose expiry was read may be deleted (the key is checked at
    /// start, so such a value is damage to look at, not garbage).
    pub fn sweep(&self) -> Result<usize> {
        let mut removed = 0;
        for id in self.vault.ids(Table::Records)? {
            match self.get(&id) {
                Ok(record) => removed += usize::from(record.is_none()),
                Err(e) => tracing::warn!("kept an operation that cannot be opened: {e:#}"),
            }
        }
        Ok(removed)
    }

    /// Operations this replica accepted but did not finish (a restart left them): their ids, oldest
    /// first.
    pub fn unfinished(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for id in self.vault.ids(Table::Records)? {
            if let Ok(Some(record)) = self.get(&id) {
                let pending = matches!(record.status, Status::NotStarted | Status::Running);
                if pending && record.owner == self.replica {
                    found.push((record.created, id));
                }
            }
        }
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vista-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A store in the redb file at `path`, as replica "a".
    fn open(path: &Path, key: [u8; 32], ttl: Duration) -> OperationStore {
        let backend = Embedded::open(path).unwrap();
        OperationStore::new(Arc::new(Vault::new(Box::new(backend), key)), ttl, "a")
    }

    #[test]
    fn an_operation_goes_from_accepted_to_succeeded_and_its_document_is_deleted() {
        let dir = temp("life");
        let store = open(&dir.join("ops.redb"), [7; 32], Duration::from_secs(60));
        let record = store
            .create(
                "a",
                b"%PDF page bytes",
                serde_json::json!({"language": "en"}),
            )
            .unwrap();
        assert_eq!(record.status, Status::NotStarted);
        assert_eq!(store.unfinished().unwrap(), ["a"]);
        let (running, document) = store.start("a").unwrap().unwrap();
        assert_eq!(
            (running.status, document.as_slice()),
            (Status::Running, &b"%PDF page bytes"[..])
        );
        store
            .finish("a", Ok(serde_json::json!({"readResults": []})))
            .unwrap();
        let done = store.get("a").unwrap().unwrap();
        assert_eq!(
            (done.status, done.result),
            (
                Status::Succeeded,
                Some(serde_json::json!({"readResults": []}))
            )
        );
        assert!(
            store.start("a").unwrap().is_none(),
            "the document is gone once processed"
        );
        assert!(store.unfinished().unwrap().is_empty());
        assert!(store.get("unknown").unwrap().is_none());
    }

    #[test]
    fn values_are_encrypted_at_rest_and_tampering_is_detected() {
        let dir = temp("crypto");
        let path = dir.join("ops.redb");
        {
            let store = open(&path, [1; 32], Duration::from_secs(60));
            store
                .create("b", b"SECRET-INVOICE-TEXT", serde_json::json!({}))
                .unwrap();
        }
        let raw = std::fs::read(&path).unwrap();
        assert!(
            !raw.windows(19).any(|w| w == b"SECRET-INVOICE-TEXT"),
            "plain text on disk"
        );
        // The wrong key cannot read it, nor can a value moved under another id.
        let wrong = open(&path, [2; 32], Duration::from_secs(60));
        assert!(wrong.get("b").is_err());
        drop(wrong);
        let store = open(&path, [1; 32], Duration::from_secs(60));
        let sealed = store.vault.seal("b", Table::Records, b"{}").unwrap();
        assert!(store
            .vault
            .open_sealed("c", Table::Records, &sealed)
            .is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(store
            .vault
            .open_sealed("b", Table::Records, &flipped)
            .is_err());
        assert_eq!(
            store
                .vault
                .open_sealed("b", Table::Records, &sealed)
                .unwrap(),
            b"{}"
        );
    }

    #[test]
    fn a_wrong_key_is_refused_at_start_and_deletes_nothing() {
        let dir = temp("wrong-key");
        let path = dir.join("ops.redb");
        {
            let store = open(&path, [5; 32], Duration::from_secs(60));
            store.vault.verify_key().unwrap();
            for id in ["x", "y"] {
                store.create(id, b"doc", serde_json::json!({})).unwrap();
            }
        }
        let wrong = open(&path, [6; 32], Duration::from_secs(60));
        let error = wrong.vault.verify_key().unwrap_err().to_string();
        assert!(error.contains("not the key"), "{error}");
        // Even a sweep run with the wrong key deletes nothing it cannot open.
        assert_eq!(wrong.sweep().unwrap(), 0);
        drop(wrong);
        let right = open(&path, [5; 32], Duration::from_secs(60));
        right.vault.verify_key().unwrap();
        assert_eq!(right.unfinished().unwrap().len(), 2, "nothing was lost");
    }

    #[test]
    fn a_store_from_before_the_check_value_is_checked_against_its_records() {
        let dir = temp("legacy-key");
        let path = dir.join("ops.redb");
        {
            let store = open(&path, [8; 32], Duration::from_secs(60));
            store.create("old", b"doc", serde_json::json!({})).unwrap();
        }
        assert!(open(&path, [9; 32], Duration::from_secs(60))
            .vault
            .verify_key()
            .is_err());
        let store = open(&path, [8; 32], Duration::from_secs(60));
        store.vault.verify_key().unwrap();
        assert!(store
            .vault
            .backend
            .get(Table::Meta, KEY_CHECK_ID)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_new_value_is_kept_only_where_there_was_none() {
        let dir = temp("put-new");
        let store = open(&dir.join("ops.redb"), [2; 32], Duration::from_secs(60));
        assert!(store
            .vault
            .put_new(Table::Datasets, "pets", b"first", f64::INFINITY)
            .unwrap());
        assert!(!store
            .vault
            .put_new(Table::Datasets, "pets", b"second", f64::INFINITY)
            .unwrap());
        assert_eq!(
            store.vault.get(Table::Datasets, "pets").unwrap().unwrap(),
            b"first"
        );
        assert!(
            store
                .vault
                .put_new(Table::Models, "pets", b"a model", f64::INFINITY)
                .unwrap(),
            "tables are apart"
        );
    }

    #[test]
    fn operations_expire_and_are_swept() {
        let dir = temp("ttl");
        let store = open(&dir.join("ops.redb"), [3; 32], Duration::from_secs(1));
        store.create("c", b"doc", serde_json::json!({})).unwrap();
        store.create("d", b"doc", serde_json::json!({})).unwrap();
        assert!(store.get("c").unwrap().is_some());
        std::thread::sleep(Duration::from_millis(1200));
        assert!(store.get("c").unwrap().is_none(), "expired on read");
        assert_eq!(store.sweep().unwrap(), 1, "the sweeper removes the other");
        assert!(store.vault.ids(Table::Records).unwrap().is_empty());
    }

    #[test]
    fn a_restart_finds_the_unfinished_operations() {
        let dir = temp("restart");
        let path = dir.join("ops.redb");
        {
            let store = open(&path, [4; 32], Duration::from_secs(60));
            store.create("queued", b"1", serde_json::json!({})).unwrap();
            store
                .create("running", b"2", serde_json::json!({}))
                .unwrap();
            store.create("done", b"3", serde_json::json!({})).unwrap();
            store.start("running").unwrap();
            store.start("done").unwrap();
            store.finish("done", Err("unreadable".into())).unwrap();
        }
        let store = open(&path, [4; 32], Duration::from_secs(60));
        assert_eq!(store.unfinished().unwrap(), ["queued", "running"]);
        // Another replica sharing the backend leaves them to the one that accepted them.
        let other = OperationStore::new(
            Arc::new(Vault::new(
                Box::new(Embedded::open(&dir.join("other.redb")).unwrap()),
                [4; 32],
            )),
            Duration::from_secs(60),
            "b",
        );
        let sealed = store
            .vault
            .backend
            .get(Table::Records, "queued")
            .unwrap()
            .unwrap();
        other
            .vault
            .backend
            .put(Table::Records, "queued", &sealed, f64::MAX)
            .unwrap();
        assert!(other.unfinished().unwrap().is_empty());
        assert!(other.get("queued").unwrap().is_some());
        assert_eq!(
            store.get("done").unwrap().unwrap().error.as_deref(),
            Some("unreadable")
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_store_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("mode");
        let path = dir.join("ops.redb");
        drop(open(&path, [1; 32], Duration::from_secs(60)));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        // A file an earlier version left world-readable is restricted when opened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open(&path, [1; 32], Duration::from_secs(60)));
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn key_files_are_created_once_with_owner_only_permissions() {
        let dir = temp("key");
        let path = dir.join("store.key");
        let key = key_file(&path).unwrap();
        assert_eq!(key_file(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(parse_key("abcd").is_err());
    }
}
