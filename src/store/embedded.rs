//! The default backend: one redb file in the data directory, surviving restarts.

use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, ReadableTable, TableDefinition};

use super::{Backend, Table};

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const DOCUMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("documents");

pub struct Embedded {
    db: Database,
}

fn definition(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    match table {
        Table::Records => RECORDS,
        Table::Documents => DOCUMENTS,
    }
}

impl Embedded {
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path)
            .with_context(|| format!("opening the operation store {}", path.display()))?;
        let txn = db.begin_write()?;
        txn.open_table(RECORDS)?;
        txn.open_table(DOCUMENTS)?;
        txn.commit()?;
        Ok(Embedded { db })
    }
}

impl Backend for Embedded {
    /// Expiry is the store's to enforce here (its sweeper and its check on read).
    fn put(&self, table: Table, id: &str, value: &[u8], _expires: f64) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(definition(table))?.insert(id, value)?;
        txn.commit()?;
        Ok(())
    }

    fn get(&self, table: Table, id: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(definition(table))?;
        let value = table.get(id)?.map(|v| v.value().to_vec());
        Ok(value)
    }

    fn remove(&self, table: Table, id: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(definition(table))?.remove(id)?;
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
}
