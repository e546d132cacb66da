//! Read operations, kept safely and only as long as they may be asked for. An embedded redb file in the
//! data directory holds each operation's record and, until it is processed, its document; every value
//! is sealed with AES-256-GCM under the operation's id (so a value moved to another id fails to open),
//! and an operation is deleted when its time to live ends (a sweeper, and a check on every read).
//! A restart finds the operations that were queued or running and hands them back for processing.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use anyhow::{anyhow, bail, Context, Result};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");
const NONCE_BYTES: usize = 12;

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
    /// The request's parameters, for the worker.
    pub params: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

pub struct OperationStore {
    db: Database,
    cipher: Aes256Gcm,
    ttl: Duration,
}

fn now() -> f64 {
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

/// A key given as 64 hex digits.
pub fn parse_key(hex_text: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(hex_text).context("the store key must be 64 hex digits")?;
    bytes
        .try_into()
        .map_err(|_| anyhow!("the store key must be 64 hex digits (32 bytes)"))
}

impl OperationStore {
    pub fn open(path: &Path, key: [u8; 32], ttl: Duration) -> Result<Self> {
        let db = Database::create(path)
            .with_context(|| format!("opening the operation store {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(RECORDS)?;
        txn.open_table(DOCUMENTS)?;
        txn.commit()?;
        Ok(OperationStore {
            db,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
            ttl,
        })
    }

    fn seal(&self, id: &str, table: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let aad = format!("{table}/{id}");
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

    fn open_sealed(&self, id: &str, table: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_BYTES {
            bail!("operation {id}: stored value is truncated");
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let aad = format!("{table}/{id}");
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

    /// Accepts a document: a new operation, `notStarted`, with the document kept until it is processed.
    pub fn create(&self, id: &str, document: &[u8], params: serde_json::Value) -> Result<Record> {
        let at = now();
        let record = Record {
            status: Status::NotStarted,
            created: at,
            updated: at,
            expires: at + self.ttl.as_secs_f64(),
            params,
            result: None,
            error: None,
        };
        let txn = self.db.begin_write()?;
        {
            txn.open_table(DOCUMENTS)?
                .insert(id, self.seal(id, "documents", document)?.as_slice())?;
        }
        self.put_in(&txn, id, &record)?;
        txn.commit()?;
        Ok(record)
    }

    /// The sealed value stored under `id` in `table`.
    fn raw(&self, table: TableDefinition<&str, &[u8]>, id: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(table)?;
        let value = table.get(id)?.map(|v| v.value().to_vec());
        Ok(value)
    }

    /// The operation's record, or None if there is none or it expired (then it is deleted here).
    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        let Some(sealed) = self.raw(RECORDS, id)? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&self.open_sealed(id, "records", &sealed)?)?;
        if record.expires <= now() {
            self.delete(id)?;
            return Ok(None);
        }
        Ok(Some(record))
    }

    fn put(&self, id: &str, record: &Record) -> Result<()> {
        let txn = self.db.begin_write()?;
        self.put_in(&txn, id, record)?;
        txn.commit()?;
        Ok(())
    }

    /// Seals and writes `record` within a write transaction.
    fn put_in(&self, txn: &redb::WriteTransaction, id: &str, record: &Record) -> Result<()> {
        let sealed = self.seal(id, "records", &serde_json::to_vec(record)?)?;
        txn.open_table(RECORDS)?.insert(id, sealed.as_slice())?;
        Ok(())
    }

    /// Marks the operation running and hands over its document (None if it is gone or expired).
    pub fn start(&self, id: &str) -> Result<Option<(Record, Vec<u8>)>> {
        let Some(mut record) = self.get(id)? else {
            return Ok(None);
        };
        let Some(sealed) = self.raw(DOCUMENTS, id)? else {
            return Ok(None);
        };
        let document = self.open_sealed(id, "documents", &sealed)?;
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
        let txn = self.db.begin_write()?;
        {
            txn.open_table(DOCUMENTS)?.remove(id)?;
        }
        self.put_in(&txn, id, &record)?;
        txn.commit()?;
        Ok(())
    }

    fn delete(&self, id: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(DOCUMENTS)?.remove(id)?;
            txn.open_table(RECORDS)?.remove(id)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn ids(&self) -> Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(RECORDS)?;
        let mut ids = Vec::new();
        for entry in table.iter()? {
            ids.push(entry?.0.value().to_string());
        }
        Ok(ids)
    }

    /// Deletes every expired operation; returns how many. A value that cannot be opened is deleted too:
    /// it can never be served.
    pub fn sweep(&self) -> Result<usize> {
        let mut removed = 0;
        for id in self.ids()? {
            let expired = match self.get(&id) {
                Ok(record) => record.is_none(),
                Err(e) => {
                    tracing::warn!("deleting unreadable operation: {e:#}");
                    self.delete(&id)?;
                    true
                }
            };
            removed += usize::from(expired);
        }
        Ok(removed)
    }

    /// Operations accepted but not finished (a restart left them): their ids, oldest first.
    pub fn unfinished(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for id in self.ids()? {
            if let Ok(Some(record)) = self.get(&id) {
                if matches!(record.status, Status::NotStarted | Status::Running) {
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

    #[test]
    fn an_operation_goes_from_accepted_to_succeeded_and_its_document_is_deleted() {
        let dir = temp("life");
        let store =
            OperationStore::open(&dir.join("ops.redb"), [7; 32], Duration::from_secs(60)).unwrap();
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
            let store = OperationStore::open(&path, [1; 32], Duration::from_secs(60)).unwrap();
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
        let wrong = OperationStore::open(&path, [2; 32], Duration::from_secs(60)).unwrap();
        assert!(wrong.get("b").is_err());
        drop(wrong);
        let store = OperationStore::open(&path, [1; 32], Duration::from_secs(60)).unwrap();
        let sealed = store.seal("b", "records", b"{}").unwrap();
        assert!(store.open_sealed("c", "records", &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(store.open_sealed("b", "records", &flipped).is_err());
        assert_eq!(store.open_sealed("b", "records", &sealed).unwrap(), b"{}");
    }

    #[test]
    fn operations_expire_and_are_swept() {
        let dir = temp("ttl");
        let store =
            OperationStore::open(&dir.join("ops.redb"), [3; 32], Duration::from_secs(1)).unwrap();
        store.create("c", b"doc", serde_json::json!({})).unwrap();
        store.create("d", b"doc", serde_json::json!({})).unwrap();
        assert!(store.get("c").unwrap().is_some());
        std::thread::sleep(Duration::from_millis(1200));
        assert!(store.get("c").unwrap().is_none(), "expired on read");
        assert_eq!(store.sweep().unwrap(), 1, "the sweeper removes the other");
        assert!(store.ids().unwrap().is_empty());
    }

    #[test]
    fn a_restart_finds_the_unfinished_operations() {
        let dir = temp("restart");
        let path = dir.join("ops.redb");
        {
            let store = OperationStore::open(&path, [4; 32], Duration::from_secs(60)).unwrap();
            store.create("queued", b"1", serde_json::json!({})).unwrap();
            store
                .create("running", b"2", serde_json::json!({}))
                .unwrap();
            store.create("done", b"3", serde_json::json!({})).unwrap();
            store.start("running").unwrap();
            store.start("done").unwrap();
            store.finish("done", Err("unreadable".into())).unwrap();
        }
        let store = OperationStore::open(&path, [4; 32], Duration::from_secs(60)).unwrap();
        assert_eq!(store.unfinished().unwrap(), ["queued", "running"]);
        assert_eq!(
            store.get("done").unwrap().unwrap().error.as_deref(),
            Some("unreadable")
        );
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
