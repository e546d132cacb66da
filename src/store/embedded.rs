//! The default backend: one redb file in the data directory, surviving restarts, a redb table per
//! [`Table`].

use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, ReadableTable, TableDefinition};

use super::{Backend, Table};

pub struct Embedded {
    db: Database,
}

fn definition(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(table.name())
}

impl Embedded {
    /// Opens (or creates) the store file, readable and writable by its owner only.
    pub fn open(path: &Path) -> Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(path)
            .with_context(|| format!("opening the operation store {}", path.display()))?;
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
        drop(file);
        let db = Database::create(path)
            .with_context(|| format!("opening the operation store {}", path.display()))?;
        let txn = db.begin_write()?;
        for table in Table::ALL {
            txn.open_table(definition(table))?;
        }
        txn.commit()?;
        Ok(Embedded { db })
    }
}

impl Backend for Embedded {
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Expiry is the store's to enforce here (its sweeper and its check on read).
    fn put(&self, table: Table, id: &str, value: &[u8], _expires: f64) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(definition(table))?.insert(id, value)?;
        txn.commit()?;
        Ok(())
    }

    fn put_new(&self, table: Table, id: &str, value: &[u8], _expires: f64) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let fresh = {
            let mut values = txn.open_table(definition(table))?;
            let taken = values.get(id)?.is_some();
            if !taken {
                values.insert(id, value)?;
            }
            !taken
        };
        txn.commit()?;
        Ok(fresh)
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

    fn ids(&self, table: Table) -> Result<Vec<String>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(definition(table))?;
        let mut ids = Vec::new();
        for entry in table.iter()? {
            ids.push(entry?.0.value().to_string());
        }
        Ok(ids)
    }
}
