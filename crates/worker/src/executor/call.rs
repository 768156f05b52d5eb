//! Running one [`FinfraRequest`]: the only place the engine talks to Finfra.
//!
//! Each variant maps to its `finfra_api` method; the answer comes back as the matching
//! [`FinfraResponse`] and a failure as a [`CallFailure`], the serializable classification
//! the workflow decides on. Document uploads read their bytes here (a path on the worker's
//! disk or base64 from the input): the workflow itself does no I/O.

use base64::Engine as _;
use finfra_api::FinfraClient;
use finfra_api::client::FileUpload;
use workflow::failure::{CallFailure, FailureKind};
use workflow::request::{FileSource, FinfraRequest};
use workflow::response::FinfraResponse;

/// The largest document the engine uploads. A KTP scan or a finance report is far smaller;
/// anything bigger is a mistake in the input, better refused than streamed to Finfra.
pub const MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;

/// Sends `request` and classifies the outcome.
///
/// # Errors
/// The classified failure: Finfra's refusal, a lost answer, or an unreadable upload file.
pub async fn perform(
    client: &FinfraClient,
    request: &FinfraRequest,
) -> Result<FinfraResponse, CallFailure> {
    use FinfraRequest as Rq;
    use FinfraResponse as Rs;
    let failure = |e: finfra_api::Error| CallFailure::from(&e);
    Ok(match request {
        Rq::Ocr {
            body,
            data_source,
            kyc_id,
        } => Rs::Ocr(
            client
                .ocr(
                    body,
                    data_source.as_ref(),
                    kyc_id.as_ref().map(|k| k.as_str()),
                )
                .await
                .map_err(failure)?,
        ),
        Rq::BiometricKyc { body, kyc_id } => Rs::BiometricKyc(
            client
                .biometric_kyc(body, Some(kyc_id.as_str()))
                .await
                .map_err(failure)?,
        ),
        Rq::CreateBorrower { body, kyc_id } => Rs::CreateBorrower(
            client
                .create_borrower(body, kyc_id.as_ref().map(|k| k.as_str()))
                .await
                .map_err(failure)?,
        ),
        Rq::CreateBorrowerForKyc { kyc_id, body } => Rs::CreateBorrowerForKyc(
            client
                .create_borrower_for_kyc(kyc_id.as_str(), body)
                .await
                .map_err(failure)?,
        ),
        Rq::SubmitKyc { kyc_id } => {
            Rs::SubmitKyc(client.submit_kyc(kyc_id.as_str()).await.map_err(failure)?)
        }
        Rq::GetKycSubmission { kyc_id } => Rs::GetKycSubmission(
            client
                .get_kyc_submission(kyc_id.as_str())
                .await
                .map_err(failure)?,
        ),
        Rq::CreateDocument { body } => {
            Rs::CreateDocument(client.create_document(body, None).await.map_err(failure)?)
        }
        Rq::UploadDocument {
            presigned_url,
            source,
            filename,
            content_type,
            ..
        } => {
            let bytes = read_source(source).await?;
            let file = FileUpload {
                bytes: bytes.into(),
                filename: filename.clone(),
                content_type: content_type.clone(),
            };
            client
                .upload_to_presigned_url(presigned_url, &file)
                .await
                .map_err(failure)?;
            Rs::UploadDocument
        }
        Rq::GetBorrower { user_id } => Rs::GetBorrower(
            client
                .get_borrower(user_id.as_str())
                .await
                .map_err(failure)?,
        ),
        Rq::ApproveBorrower { user_id } => Rs::ApproveBorrower(
            client
                .approve_borrower(user_id.as_str())
                .await
                .map_err(failure)?,
        ),
        Rq::BlockBorrower { user_id, body } => Rs::BlockBorrower(
            client
                .block_borrower(user_id.as_str(), Some(body))
                .await
                .map_err(failure)?,
        ),
        Rq::VerifyBiometricRdf { user_id } => Rs::VerifyBiometricRdf(
            client
                .verify_biometric_rdf(user_id.as_str())
                .await
                .map_err(failure)?,
        ),
        Rq::HubStatus { user_id, provider } => Rs::HubStatus(
            client
                .hub_status(user_id.as_str(), provider)
                .await
                .map_err(failure)?,
        ),
        Rq::ScoreReport { body, sources } => {
            Rs::ScoreReport(client.score_report(body, sources).await.map_err(failure)?)
        }
        Rq::CreditHistory { identity_number } => Rs::CreditHistory(
            client
                .credit_history(identity_number.as_str())
                .await
                .map_err(failure)?,
        ),
        Rq::ClikCreditReport { body } => {
            Rs::ClikCreditReport(client.clik_credit_report(body).await.map_err(failure)?)
        }
        Rq::CreateSinglePaymentLoan { user_id, body } => Rs::CreateSinglePaymentLoan(
            client
                .create_single_payment_loan(user_id.as_str(), body)
                .await
                .map_err(failure)?,
        ),
        Rq::CreateBnplLoan { user_id, body } => Rs::CreateBnplLoan(
            client
                .create_bnpl_loan(user_id.as_str(), body)
                .await
                .map_err(failure)?,
        ),
        Rq::GetLoan { unique_id } => {
            Rs::GetLoan(client.get_loan(unique_id).await.map_err(failure)?)
        }
        Rq::ListLoans { query } => Rs::ListLoans(
            client.list_loans(query).await.map_err(failure)?,
            workflow::reconcile::KnownLoans::default(),
        ),
        Rq::InitiateSigning { body } => {
            Rs::InitiateSigning(client.initiate_signing(body).await.map_err(failure)?)
        }
        Rq::DisburseLoan { unique_id } => {
            Rs::DisburseLoan(client.disburse_loan(unique_id).await.map_err(failure)?)
        }
        Rq::RejectLoan { unique_id, body } => {
            Rs::RejectLoan(client.reject_loan(unique_id, body).await.map_err(failure)?)
        }
        Rq::RequestVirtualAccount { body } => Rs::RequestVirtualAccount(
            client
                .request_virtual_account(body)
                .await
                .map_err(failure)?,
        ),
    })
}

/// The bytes of a document to upload. A file that cannot be read is a permanent failure:
/// retrying does not make it appear, and the workflow asks a person.
async fn read_source(source: &FileSource) -> Result<Vec<u8>, CallFailure> {
    let invalid = |message: String| CallFailure::permanent(FailureKind::Config, &message);
    match source {
        FileSource::Base64(data) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.as_bytes())
                .map_err(|e| invalid(format!("the document's base64 content is invalid: {e}")))?;
            check_size(bytes.len() as u64).map_err(invalid)?;
            Ok(bytes)
        }
        FileSource::Path(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let metadata = std::fs::metadata(&path)
                    .map_err(|e| format!("cannot read document file {path}: {e}"))?;
                check_size(metadata.len())?;
                std::fs::read(&path).map_err(|e| format!("cannot read document file {path}: {e}"))
            })
            .await
            .map_err(|e| invalid(format!("reading the document file failed: {e}")))?
            .map_err(invalid)
        }
    }
}

fn check_size(len: u64) -> Result<(), String> {
    if len == 0 {
        return Err("the document is empty".to_owned());
    }
    if len > MAX_UPLOAD_BYTES {
        return Err(format!(
            "the document is {len} bytes, over the {MAX_UPLOAD_BYTES}-byte limit"
        ));
    }
    Ok(())
}
