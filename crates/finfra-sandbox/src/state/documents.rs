//! Documents (CONTRACT §6): created with a presigned upload URL on the sandbox itself
//! (`{base}/_storage/{id}?token=...`), uploaded with a raw `PUT`, then readable.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{State, timestamp};
use crate::error::{ApiError, ApiResult};

pub(crate) const DOCUMENT_TYPES: &[&str] = &[
    "KTP",
    "SELFIE",
    "NPWP",
    "SELFIE_WITH_KTP",
    "STOCK_IMAGES",
    "FINANCE_REPORT",
];

#[derive(Debug, Clone)]
pub(crate) struct Upload {
    pub content_type: String,
    pub bytes: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub id: String,
    pub kind: String,
    pub description: Option<String>,
    /// The presigned URL's secret.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub upload: Option<Upload>,
}

impl Document {
    pub fn render(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.kind,
            "description": self.description,
            "status": if self.upload.is_some() { "UPLOADED" } else { "PENDING_UPLOAD" },
            "content_type": self.upload.as_ref().map(|u| u.content_type.as_str()),
            "size": self.upload.as_ref().map(|u| u.bytes.len()),
            "created_at": timestamp(self.created_at),
        })
    }
}

/// One item of a `PATCH /api/documents` body, validated.
#[derive(Debug, Clone)]
pub(crate) struct DocumentPatch {
    pub id: String,
    pub kind: String,
    pub description: Option<String>,
}

impl State {
    /// `POST /api/documents`.
    pub fn create_document(
        &mut self,
        kind: &str,
        description: Option<String>,
        now: DateTime<Utc>,
    ) -> Value {
        let id = format!("doc_{}", self.hex(20));
        let token = self.hex(32);
        let expires_at = now + self.config.presign_ttl;
        let url = format!(
            "{}/_storage/{id}?token={token}",
            self.base_url.as_str().trim_end_matches('/')
        );
        self.documents.insert(
            id.clone(),
            Document {
                id: id.clone(),
                kind: kind.to_owned(),
                description,
                token,
                expires_at,
                created_at: now,
                upload: None,
            },
        );
        json!({
            "id": id,
            "type": kind,
            "presigned_url": url,
            "expires_at": timestamp(expires_at),
        })
    }

    /// `PUT <presigned_url>`: a wrong token or an expired URL is `403`, as with S3.
    pub fn upload_document(
        &mut self,
        id: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        bytes: Bytes,
        now: DateTime<Utc>,
    ) -> ApiResult<()> {
        let doc = self.documents.get_mut(id).ok_or_else(|| {
            ApiError::new(axum::http::StatusCode::FORBIDDEN, "Invalid upload URL")
        })?;
        let token_ok = token.is_some_and(|t| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                t.as_bytes(),
                doc.token.as_bytes(),
            ))
        });
        if !token_ok {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "Invalid upload URL",
            ));
        }
        if now >= doc.expires_at {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "Upload URL expired",
            ));
        }
        doc.upload = Some(Upload {
            content_type: content_type
                .unwrap_or("application/octet-stream")
                .to_owned(),
            bytes,
        });
        Ok(())
    }

    pub fn document(&self, id: &str) -> ApiResult<&Document> {
        self.documents
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("Document {id} not found")))
    }

    /// `GET /api/documents/{documentId}/file`: `404` until uploaded.
    pub fn document_file(&self, id: &str) -> ApiResult<Bytes> {
        self.document(id)?
            .upload
            .as_ref()
            .map(|u| u.bytes.clone())
            .ok_or_else(|| ApiError::not_found(format!("Document {id} has not been uploaded")))
    }

    /// `PATCH /api/documents`: all or nothing, every id must exist.
    pub fn patch_documents(&mut self, items: Vec<DocumentPatch>) -> ApiResult<Value> {
        for item in &items {
            self.document(&item.id)?;
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(doc) = self.documents.get_mut(&item.id) {
                doc.kind = item.kind;
                if item.description.is_some() {
                    doc.description = item.description;
                }
                out.push(doc.render());
            }
        }
        Ok(Value::Array(out))
    }
}
