//! Document endpoints: the two-step upload (create, then `PUT` to the presigned URL), reading
//! metadata, streaming the file, and updating metadata in bulk.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{Method, Response};
use url::Url;

use super::FinfraClient;
use super::path;
use super::transport::{self, AuthScheme, Body, Call, FileUpload};
use crate::error::Error;
use crate::model::document::{CreateDocument, CreatedDocument, Document, DocumentPatch};
use crate::validate::Validate;

/// A document's file, streamed from Finfra rather than held in memory.
pub struct DocumentDownload {
    response: Response,
}

impl std::fmt::Debug for DocumentDownload {
    // The response's own Debug shows the URL; the length and type are what matter.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentDownload")
            .field("content_type", &self.content_type())
            .field("content_length", &self.content_length())
            .finish()
    }
}

impl DocumentDownload {
    /// The `Content-Type` Finfra announced (`application/octet-stream`).
    #[must_use]
    pub fn content_type(&self) -> Option<&str> {
        self.response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// The size in bytes, when Finfra announced it.
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// The file's bytes as they arrive. A transport failure mid-stream is an
    /// [`Error::Connection`] or [`Error::Timeout`] (a GET: safe to start again).
    pub fn bytes_stream(self) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
        self.response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| Error::from_transport(&Method::GET, e)))
    }
}

impl FinfraClient {
    /// `POST /api/documents` (no auth, `multipart/form-data`): creates a document and returns
    /// the presigned URL to upload its file to. `file`, when given, is sent as the `file`
    /// part (the reference: "with document metadata and the file").
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending.
    pub async fn create_document(
        &self,
        document: &CreateDocument,
        file: Option<FileUpload>,
    ) -> Result<CreatedDocument, Error> {
        document.validate()?;
        let mut fields = vec![("type", document.r#type.as_str().to_owned())];
        if let Some(description) = &document.description {
            fields.push(("description", description.clone()));
        }
        if let Some(file) = &file {
            check_upload(file)?;
        }
        let mut call = Call::new(
            Method::POST,
            "/api/documents",
            self.url(&["api", "documents"])?,
            AuthScheme::None,
        );
        call.body = Body::Multipart {
            fields,
            file: file.map(|f| ("file", f)),
        };
        self.inner.json(&call).await
    }

    /// `PUT <presigned_url>` with the raw bytes. The URL is absolute and may point at
    /// another host (storage); it gets no `Authorization` header.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a URL that is not HTTP(S); [`Error::Rejected`] with `403`
    /// after the URL expired.
    pub async fn upload_to_presigned_url(
        &self,
        presigned_url: &str,
        file: &FileUpload,
    ) -> Result<(), Error> {
        check_upload(file)?;
        let url = Url::parse(presigned_url).map_err(|e| Error::InvalidUrl {
            what: "presigned upload URL",
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidUrl {
                what: "presigned upload URL",
                reason: format!("scheme {:?} is not http or https", url.scheme()),
            });
        }
        let mut call = Call::new(Method::PUT, "{presigned_url}", url, AuthScheme::None);
        call.body = Body::Raw(file.clone());
        let response = self.inner.send(&call).await?;
        // Drain the answer so the connection can be reused; its content is not used.
        transport::read_body(response, &Method::PUT).await?;
        Ok(())
    }

    /// Both steps of the upload in sequence: [`Self::create_document`] without a file, then
    /// [`Self::upload_to_presigned_url`].
    ///
    /// If the upload fails, the document exists in `PENDING_UPLOAD` and the error does not
    /// carry its id: a caller that wants to resume the upload calls the two steps itself.
    ///
    /// # Errors
    /// Either step's error.
    pub async fn upload_document(
        &self,
        document: &CreateDocument,
        file: FileUpload,
    ) -> Result<CreatedDocument, Error> {
        check_upload(&file)?;
        let created = self.create_document(document, None).await?;
        self.upload_to_presigned_url(created.presigned_url.as_str(), &file)
            .await?;
        Ok(created)
    }

    /// `GET /api/documents/{documentId}`: the document's metadata.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an id under 6 characters; `404` for an unknown one.
    pub async fn get_document(&self, document_id: &str) -> Result<Document, Error> {
        let id = path::document_id(document_id)?;
        let call = Call::new(
            Method::GET,
            "/api/documents/{documentId}",
            self.url(&["api", "documents", id])?,
            AuthScheme::Bearer,
        );
        self.inner.json(&call).await
    }

    /// `GET /api/documents/{documentId}/file`: the file, streamed.
    ///
    /// The request timeout covers the whole download.
    ///
    /// # Errors
    /// [`Error::Rejected`] with `404` when the file is not uploaded yet.
    pub async fn download_document(&self, document_id: &str) -> Result<DocumentDownload, Error> {
        let id = path::document_id(document_id)?;
        let call = Call::new(
            Method::GET,
            "/api/documents/{documentId}/file",
            self.url(&["api", "documents", id, "file"])?,
            AuthScheme::Bearer,
        );
        let response = self.inner.send(&call).await?;
        Ok(DocumentDownload { response })
    }

    /// `PATCH /api/documents`: changes type and description of several documents at once.
    ///
    /// # Errors
    /// [`Error::Invalid`] before sending.
    pub async fn update_documents(
        &self,
        patches: &[DocumentPatch],
    ) -> Result<Vec<Document>, Error> {
        let call = Call::new(
            Method::PATCH,
            "/api/documents",
            self.url(&["api", "documents"])?,
            AuthScheme::Bearer,
        )
        .json(patches)?;
        self.inner.json(&call).await
    }
}

/// Checks a file before it is sent: its content type must be `type/subtype` (parameters
/// allowed), as a multipart part and a `Content-Type` header need.
///
/// # Errors
/// [`Error::Invalid`] naming the field.
fn check_upload(file: &FileUpload) -> Result<(), Error> {
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b))
    };
    let essence = file
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let valid = essence
        .split_once('/')
        .is_some_and(|(kind, subtype)| is_token(kind) && is_token(subtype))
        && reqwest::header::HeaderValue::from_str(&file.content_type).is_ok();
    if !valid {
        return Err(path::invalid(
            "file.content_type",
            "must be a MIME type such as image/jpeg",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(content_type: &str) -> FileUpload {
        FileUpload {
            bytes: Bytes::from_static(b"x"),
            filename: "ktp.jpg".to_owned(),
            content_type: content_type.to_owned(),
        }
    }

    #[test]
    fn content_type_must_be_a_mime_type() {
        for good in ["image/jpeg", "application/pdf", "text/plain; charset=utf-8"] {
            assert!(check_upload(&upload(good)).is_ok(), "{good}");
        }
        for bad in ["", "jpeg", "image/", "/jpeg", "image/jp eg", "image/jpeg\n"] {
            assert!(check_upload(&upload(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn upload_debug_hides_content_and_name() {
        let shown = format!("{:?}", upload("image/jpeg"));
        assert!(!shown.contains("ktp.jpg"), "{shown}");
    }
}
