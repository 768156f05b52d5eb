//! The definitions workflows pinned, stored once by pin (migration 0012): a workflow's
//! context names its definition by pin instead of carrying a copy (the `workflow` crate's
//! `stored` module). The store keeps the body as given; it does not read it.

use serde_json::Value;

use crate::Store;
use crate::dialect::{At, Columns, Doc, each_backend};
use crate::error::StoreError;

/// A definition to store under its pin.
#[derive(Debug, Clone, Copy)]
pub struct PinnedDefinition<'a> {
    /// SHA-256 (hex) of the body's JSON text with keys sorted: the pin contexts name.
    pub digest: &'a str,
    pub name: &'a str,
    pub version: i32,
    /// SHA-256 of the file it was read from.
    pub file_digest: &'a str,
    pub body: &'a Value,
}

impl Store {
    /// Stores a definition under its pin; one already stored under it is kept (a pin
    /// names one body).
    ///
    /// # Errors
    /// A database failure.
    pub async fn store_definition(&self, pinned: PinnedDefinition<'_>) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO definitions (digest, name, version, file_digest, body, stored_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO NOTHING";
        let now = chrono::Utc::now();
        each_backend!(&self.backend, |pool, d| {
            sqlx::query(SQL)
                .bind(pinned.digest)
                .bind(pinned.name)
                .bind(pinned.version)
                .bind(pinned.file_digest)
                .bind(Doc(pinned.body))
                .bind(At(now))
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// The body stored under `digest`.
    ///
    /// # Errors
    /// A database failure, or a body that is not JSON.
    pub async fn definition(&self, digest: &str) -> Result<Option<Value>, StoreError> {
        const SQL: &str = "SELECT body FROM definitions WHERE digest = $1";
        each_backend!(&self.backend, |pool, d| {
            let row = sqlx::query(SQL).bind(digest).fetch_optional(pool).await?;
            row.map(|row| row.doc("body")).transpose()
        })
    }
}
