//! The borrowers of an end-to-end run: a realistic mix of products and of outcomes, each
//! chosen through the sandbox's magic values (signatory email tags, the NIK in the KTP
//! image), with distinct, valid NIKs. The generator lives in the library
//! (`worker::sample`), shared with `finflow demo`.

#[allow(unused_imports)] // Each test binary uses a different subset.
pub use worker::sample::{Applicant, Intent, Product, Tag, mix};
