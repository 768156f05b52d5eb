//! Document bodies (CONTRACT §6): create (multipart metadata), the created document with
//! its presigned upload URL, a document's metadata, and the batch update.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lenient::{self, string_enum};

string_enum! {
    /// Kind of KYC document.
    pub enum DocumentType {
        Ktp => "KTP",
        Selfie => "SELFIE",
        Npwp => "NPWP",
        SelfieWithKtp => "SELFIE_WITH_KTP",
        StockImages => "STOCK_IMAGES",
        FinanceReport => "FINANCE_REPORT",
    }
}

/// The metadata fields of `POST /api/documents` (`multipart/form-data`): the client
/// turns each field into a form part; `Serialize` exists for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDocument {
    pub r#type: DocumentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Answer of `POST /api/documents` (`201`): PUT the bytes to `presigned_url` before
/// `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedDocument {
    /// At least 6 characters.
    pub id: String,
    pub r#type: DocumentType,
    pub presigned_url: String,
    #[serde(with = "lenient::timestamp")]
    pub expires_at: DateTime<Utc>,
}

string_enum! {
    /// Whether the file has been uploaded to the presigned URL.
    pub enum DocumentStatus {
        PendingUpload => "PENDING_UPLOAD",
        Uploaded => "UPLOADED",
    }
}

/// Answer of `GET /api/documents/{documentId}` (and items of the batch update).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub r#type: DocumentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub status: DocumentStatus,
    /// Known once uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Bytes; known once uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(with = "lenient::timestamp")]
    pub created_at: DateTime<Utc>,
}

/// One item of `PATCH /api/documents` (the body is a JSON array of these; validate a
/// batch with `<[DocumentPatch] as Validate>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentPatch {
    pub id: String,
    pub r#type: DocumentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn created_document_reads_reference_example() {
        let d: CreatedDocument = serde_json::from_value(json!({
            "id": "doc_01j4abc",
            "type": "KTP",
            "presigned_url": "https://storage.finfra.io/upload?token=...",
            "expires_at": "2025-06-29T09:00:00Z"
        }))
        .unwrap();
        assert_eq!(d.r#type, DocumentType::Ktp);
        assert_eq!(
            serde_json::to_value(&d).unwrap()["expires_at"],
            json!("2025-06-29T09:00:00Z")
        );
    }

    #[test]
    fn document_and_patch_shapes() {
        let d: Document = serde_json::from_value(json!({
            "id": "doc_01j4abc", "type": "SELFIE_WITH_KTP", "description": null,
            "status": "PENDING_UPLOAD", "content_type": null, "size": null,
            "created_at": "2025-06-29T08:00:00.000Z"
        }))
        .unwrap();
        assert_eq!(d.status, DocumentStatus::PendingUpload);
        assert_eq!(d.r#type, DocumentType::SelfieWithKtp);
        let patch = vec![DocumentPatch {
            id: "doc_01j4abc".into(),
            r#type: DocumentType::Npwp,
            description: None,
        }];
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([{"id": "doc_01j4abc", "type": "NPWP"}])
        );
        let create = CreateDocument {
            r#type: DocumentType::FinanceReport,
            description: Some("2025 P&L".into()),
        };
        assert_eq!(
            serde_json::to_value(&create).unwrap(),
            json!({"type": "FINANCE_REPORT", "description": "2025 P&L"})
        );
    }
}
