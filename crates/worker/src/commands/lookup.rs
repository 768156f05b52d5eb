//! Which workflow an operator means: `finflow inspect|cancel|resolve|retry <id | business key>
//! [--kind KIND]`. A business key is unique per kind only, so a key two kinds share needs
//! `--kind` (or the id).

use anyhow::bail;
use store::{CorrelationKey, Store, Workflow};
use uuid::Uuid;

/// Names one workflow on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The workflow's id, or its business key.
    #[arg(value_name = "ID|BUSINESS_KEY")]
    pub workflow: String,
    /// The workflow kind (e.g. onboard-borrower), when workflows of two kinds share the
    /// business key.
    #[arg(long)]
    pub kind: Option<String>,
}

/// The workflow `target` names: by id first, then by business key.
///
/// # Errors
/// None matches, the key is ambiguous without `--kind` (the message lists the candidates),
/// or the database fails.
pub async fn find(store: &Store, target: &Target) -> anyhow::Result<Workflow> {
    let wanted = target.workflow.trim();
    let kind = target.kind.as_deref();
    if let Ok(id) = Uuid::parse_str(wanted)
        && let Some(workflow) = store.get(id).await?
    {
        if let Some(kind) = kind
            && kind != workflow.kind
        {
            bail!("workflow {id} is of kind {}, not {kind}", workflow.kind);
        }
        return Ok(workflow);
    }
    if let Some(kind) = kind {
        return match store.find_by_business_key(kind, wanted).await? {
            Some(workflow) => Ok(workflow),
            None => bail!("no {kind} workflow has the id or business key {wanted:?}"),
        };
    }
    let mut found = store.find_by_key_any_kind(wanted).await?;
    match found.len() {
        0 => bail!("no workflow has the id or business key {wanted:?}"),
        1 => Ok(found.remove(0)),
        _ => {
            let candidates: Vec<String> = found
                .iter()
                .map(|w| format!("{} {}", w.kind, w.id))
                .collect();
            bail!(
                "business key {wanted:?} is used by {} workflows ({}): add --kind KIND, or give the id",
                found.len(),
                candidates.join(", ")
            )
        }
    }
}

/// A correlation value fit to show: a NIK (`identity_number`, PII) keeps only its last 4
/// digits.
pub fn shown_key_value(key: CorrelationKey, value: &str) -> String {
    match key {
        CorrelationKey::IdentityNumber => mask_nik(value),
        CorrelationKey::UserId
        | CorrelationKey::KycId
        | CorrelationKey::LoanUniqueId
        | CorrelationKey::ExternalId => value.to_owned(),
    }
}

/// `3275062009921981` → `************1981`; 4 characters or fewer are masked entirely.
fn mask_nik(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len().max(4));
    }
    let visible: String = chars[chars.len() - 4..].iter().collect();
    format!("{}{visible}", "*".repeat(chars.len() - 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nik_keeps_only_its_last_four_digits() {
        assert_eq!(
            shown_key_value(CorrelationKey::IdentityNumber, "3275062009921981"),
            "************1981"
        );
        assert_eq!(
            shown_key_value(CorrelationKey::IdentityNumber, "123"),
            "****"
        );
        assert_eq!(shown_key_value(CorrelationKey::UserId, "abc"), "abc");
    }
}
