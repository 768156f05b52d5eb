//! Personal data masked for the pages: a NIK or account number shows its last 4 digits, a
//! name its initials, a phone, e-mail, address, date of birth or photo nothing useful.
//! Applied to every JSON value a page shows (input, facts, journal summaries, inbox
//! payloads, wait keys), whoever is signed in: a user whose role allows personal data reads
//! the input in the clear only through the journaled reveal.

use serde_json::Value;

/// How a key's value is shown.
enum Rule {
    LastFour,
    Initials,
    Hidden,
}

fn rule(key: &str) -> Option<Rule> {
    let key = key.to_ascii_lowercase();
    let has = |needle: &str| key.contains(needle);
    if has("phone")
        || has("mobile")
        || has("email")
        || has("address")
        || has("birth")
        || has("mother")
        || has("photo")
        || has("selfie")
        || has("image")
        || has("ktp")
    {
        Some(Rule::Hidden)
    } else if has("nik")
        || has("identity_number")
        || key == "number"
        || has("account_number")
        || has("npwp")
    {
        Some(Rule::LastFour)
    } else if has("name") && !has("merchant") && !has("bank") && !has("definition") {
        Some(Rule::Initials)
    } else {
        None
    }
}

/// `value` with personal data masked, by key name, at any depth.
#[must_use]
pub fn json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let shown = match (rule(k), v) {
                        (Some(rule), Value::String(s)) => Value::String(apply(&rule, s)),
                        (Some(rule), Value::Number(n)) => {
                            Value::String(apply(&rule, &n.to_string()))
                        }
                        (Some(_), Value::Null) => Value::Null,
                        (Some(Rule::Hidden), _) => Value::String("***".to_owned()),
                        _ => json(v),
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        other => other.clone(),
    }
}

fn apply(rule: &Rule, s: &str) -> String {
    match rule {
        Rule::LastFour => last_four(s),
        Rule::Initials => initials(s),
        Rule::Hidden => "***".to_owned(),
    }
}

/// `************1234`: only the last 4 characters.
#[must_use]
pub fn last_four(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{}{tail}", "*".repeat(chars.len() - 4))
}

/// `B. S.`: the initials of a name.
#[must_use]
pub fn initials(s: &str) -> String {
    s.split_whitespace()
        .filter_map(|w| w.chars().next())
        .map(|c| format!("{}.", c.to_uppercase()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn personal_data_is_masked_at_any_depth() {
        let shown = super::json(&json!({
            "borrower": {
                "name": "Budi Santoso", "identity_number": "3171234567890123",
                "phone_number": "+628123", "mobile_number": "+628124",
                "mother_maiden_name": "Sari", "type": "PERSONAL"
            },
            "disbursement_account": { "holder_name": "Budi Santoso", "number": "123123123213" },
            "merchant_name": "Toko Maju",
            "loans": [{ "nik": 3171234567890123_u64 }]
        }));
        assert_eq!(shown["borrower"]["name"], "B. S.");
        assert_eq!(shown["borrower"]["identity_number"], "************0123");
        assert_eq!(shown["borrower"]["phone_number"], "***");
        assert_eq!(shown["borrower"]["mobile_number"], "***");
        assert_eq!(shown["borrower"]["mother_maiden_name"], "***");
        assert_eq!(shown["borrower"]["type"], "PERSONAL");
        assert_eq!(shown["disbursement_account"]["holder_name"], "B. S.");
        assert_eq!(shown["disbursement_account"]["number"], "********3213");
        assert_eq!(shown["merchant_name"], "Toko Maju");
        assert_eq!(shown["loans"][0]["nik"], "************0123");
        assert!(!shown.to_string().contains("Budi"));
    }
}
