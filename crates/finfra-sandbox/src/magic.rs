//! Magic values: outcomes derived deterministically from the request data, like a payment
//! provider's test card numbers, so a test or a demo picks the path it wants by its input.
//! The table lives in the crate docs (`lib.rs`); keep the two in step.

use rust_decimal::Decimal;

/// Tags in the signatory's email local part, after a `+`: `budi+reject+hubpending@x.id`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tags {
    /// KYC review fails: `REJECTED`, `user_rejected` with a reason.
    pub reject: bool,
    /// Credit score 420, grade E.
    pub lowscore: bool,
    /// Credit sources and history show overdue loans, 95 days past due.
    pub overdue: bool,
    /// Hub checks answer `FAILED`.
    pub hubfail: bool,
    /// Hub checks answer `PENDING` on the first poll per provider, then `PASSED`.
    pub hubpending: bool,
    /// RDF biometric verification answers `FAILED`.
    pub rdffail: bool,
    /// RDF biometric verification answers `PENDING` on the first call, then `VERIFIED`.
    pub rdfpending: bool,
    /// The borrower repays each loan in full, in one payment, the moment its virtual account
    /// is issued: inside the virtual-account request, before its answer leaves.
    pub paynow: bool,
}

impl Tags {
    pub fn from_email(email: &str) -> Self {
        let local = email.split('@').next().unwrap_or_default();
        let mut tags = Self::default();
        for tag in local.split('+').skip(1) {
            match tag.to_ascii_lowercase().as_str() {
                "reject" => tags.reject = true,
                "lowscore" => tags.lowscore = true,
                "overdue" => tags.overdue = true,
                "hubfail" => tags.hubfail = true,
                "hubpending" => tags.hubpending = true,
                "rdffail" => tags.rdffail = true,
                "rdfpending" => tags.rdfpending = true,
                "paynow" => tags.paynow = true,
                _ => {}
            }
        }
        tags
    }
}

/// The reason given with a `+reject` KYC failure.
pub(crate) const KYC_REJECT_REASON: &str = "KTP data does not match the Dukcapil record";

/// FNV-1a: a stable hash (std's `DefaultHasher` may change between releases).
pub(crate) fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The credit score: 420 with `+lowscore`, else 600..=900 from the NIK, so the default passes
/// any sensible policy and two borrowers differ.
pub(crate) fn score(nik: &str, tags: Tags) -> u16 {
    if tags.lowscore {
        return 420;
    }
    // `% 301` keeps the value below 301, so the cast cannot truncate.
    600 + (stable_hash(nik) % 301) as u16
}

/// The credit score a borrower with this NIK gets when its email has no `+lowscore`: for
/// tests and demos that need to know in advance whether a credit policy will pass it.
#[must_use]
pub fn credit_score_of(nik: &str) -> u16 {
    score(nik, Tags::default())
}

pub(crate) fn grade(score: u16) -> &'static str {
    match score {
        800.. => "A",
        700..=799 => "B",
        600..=699 => "C",
        500..=599 => "D",
        _ => "E",
    }
}

/// What the bureaus know about a NIK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bureau {
    pub active_loans: u32,
    pub overdue_loans: u32,
    pub max_days_past_due: u32,
    pub outstanding: Decimal,
}

pub(crate) fn bureau(nik: &str, tags: Tags) -> Bureau {
    let h = stable_hash(nik);
    let active = 1 + (h % 3) as u32;
    let outstanding = Decimal::from((h / 7) % 50 + 1) * Decimal::from(1_000_000);
    if tags.overdue {
        Bureau {
            active_loans: active + 2,
            overdue_loans: 2,
            max_days_past_due: 95,
            outstanding,
        }
    } else {
        Bureau {
            active_loans: active,
            overdue_loans: 0,
            max_days_past_due: 0,
            outstanding,
        }
    }
}

/// The bank refuses a transfer to an account number starting with `999`.
pub(crate) fn bank_refuses(account_number: &str) -> bool {
    account_number.starts_with("999")
}

pub(crate) const BANK_REFUSAL_REASON: &str = "Beneficiary account is closed";

/// Biometric KYC: liveness fails when the selfie contains `spoof`; a selfie containing
/// `mismatch` passes liveness but matches the KTP poorly.
pub(crate) fn liveness(selfie: &str) -> (&'static str, f64) {
    let s = selfie.to_ascii_lowercase();
    if s.contains("spoof") {
        ("FAILED", 0.12)
    } else if s.contains("mismatch") {
        ("PASSED", 0.31)
    } else {
        ("PASSED", 0.93)
    }
}

/// OCR: the NIK is the first run of 16 digits in the file, else one derived from the file;
/// a file containing `blurry` is read with low confidence.
pub(crate) fn ocr_nik(file: &str) -> String {
    let bytes = file.as_bytes();
    let mut run = 0;
    for (i, b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            run += 1;
            if run == 16 {
                return file[i + 1 - 16..=i].to_owned();
            }
        } else {
            run = 0;
        }
    }
    // 32 (Jawa Barat) + 14 digits from the hash.
    format!("32{:014}", stable_hash(file) % 100_000_000_000_000)
}

pub(crate) fn ocr_confidence(file: &str) -> f64 {
    if file.to_ascii_lowercase().contains("blurry") {
        0.42
    } else {
        0.97
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_from_the_local_part() {
        let t = Tags::from_email("budi+reject+HubPending@example.com");
        assert!(t.reject && t.hubpending && !t.lowscore);
        assert_eq!(Tags::from_email("x@reject.com"), Tags::default());
    }

    #[test]
    fn default_scores_pass_and_are_stable() {
        for nik in ["3275062009921981", "3573032311870003", "3171000000000001"] {
            let s = score(nik, Tags::default());
            assert!((600..=900).contains(&s));
            assert_eq!(s, score(nik, Tags::default()));
        }
        let low = Tags {
            lowscore: true,
            ..Tags::default()
        };
        assert_eq!((score("3275062009921981", low), grade(420)), (420, "E"));
    }

    #[test]
    fn ocr_reads_the_first_sixteen_digits() {
        assert_eq!(ocr_nik("ktp-3275062009921981.jpg"), "3275062009921981");
        assert_eq!(ocr_nik("no digits").len(), 16);
    }
}
