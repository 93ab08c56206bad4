//! Masking passwords in text about to be shown: the last line of defence
//! for messages that echo what the user typed (clap's "unexpected argument
//! '…'", "invalid value '…' for '--plan'", a path in an error). A database
//! URL pasted in the wrong place must not reach a terminal or a CI log with
//! its password, whichever message quotes it.
//!
//! Two layers: every `scheme://user:password@` in the text loses its
//! password, and every password found in the command line or the URL
//! variables (raw and percent-decoded) is replaced wherever it appears,
//! for a text that quotes it some other way (cut at a quote, decoded).

/// `text` with every password it may hold replaced by `***`: the userinfo
/// password of each URL, the value of each `password=`, and each of
/// `secrets` (from [`secrets_in`]).
pub fn redact(text: &str, secrets: &[String]) -> String {
    // The known passwords first: masking a URL cut at a space or quote
    // first would leave the rest of a long one unmatched.
    let mut out = text.to_string();
    for secret in secrets {
        out = out.replace(secret.as_str(), "***");
    }
    mask_password_pairs(&mask_url_passwords(&out))
}

/// The passwords held by `values` (command-line arguments, environment
/// values): of a URL's userinfo and of `password=` pairs, raw and
/// percent-decoded, longest first. Shorter than 4 characters they are left
/// to the URL masking: replacing them everywhere would mangle the text.
pub fn secrets_in<I, S>(values: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut found = Vec::new();
    for value in values {
        let value = value.as_ref();
        let mut i = 0;
        while let Some(at) = value[i..].find("://") {
            let start = i + at + 3;
            // The driver ends the credentials at the first '@'; a text
            // with more is masked up to its last one, to be safe.
            let rest = &value[start..];
            for end in [rest.find('@'), rest.rfind('@')].into_iter().flatten() {
                if let Some((_, password)) = rest[..end].split_once(':') {
                    found.push(password.to_string());
                }
            }
            i = start;
        }
        let lower = value.to_ascii_lowercase();
        let mut i = 0;
        while let Some(at) = lower[i..].find("password=") {
            let start = i + at + "password=".len();
            let v = &value[start..];
            let v = match v.strip_prefix('\'') {
                Some(quoted) => quoted.split('\'').next().unwrap_or(""),
                None => v
                    .split(|c: char| c.is_whitespace() || c == '&')
                    .next()
                    .unwrap_or(""),
            };
            found.push(v.to_string());
            i = start;
        }
    }
    let mut all: Vec<String> = found
        .iter()
        .flat_map(|p| [p.clone(), crate::db::postgres::percent_decode(p)])
        .filter(|p| p.chars().count() >= 4 && p != "***")
        .collect();
    all.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    all.dedup();
    all
}

/// Whether a value given where a file, a receipt id or a table name goes
/// is a URL (a database URL pasted in the wrong place).
pub fn looks_like_url(value: &str) -> bool {
    value.contains("://")
}

/// Where a quoted or free-standing URL ends in a message.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '<' | '>' | '\u{1b}')
}

/// What the tool's own advice writes where a password goes
/// (`postgres://USER[:PASSWORD]@HOST`): no secret, kept as written.
const PLACEHOLDERS: &[&str] = &["***", "PASSWORD]", "PASSWORD"];

/// `scheme://user:secret@host` → `scheme://user:***@host`, for every URL
/// in `text`. Everything between the first ':' and the last '@' of the
/// URL is masked (the driver stops at the first '@'; masking more is safe).
fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let token_len = after.find(ends_token).unwrap_or(after.len());
        let token = &after[..token_len];
        match (token.rfind('@'), token.find(':')) {
            (Some(last_at), Some(colon))
                if colon < last_at && !PLACEHOLDERS.contains(&&token[colon + 1..last_at]) =>
            {
                out.push_str(&token[..=colon]);
                out.push_str("***");
                out.push_str(&token[last_at..]);
            }
            _ => out.push_str(token),
        }
        rest = &after[token_len..];
    }
    out.push_str(rest);
    out
}

/// `password=secret` (a URL parameter or a libpq pair, quoted or not) →
/// `password=***`.
fn mask_password_pairs(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(at) = lower[from..].find("password=") {
        let start = from + at + "password=".len();
        let v = &text[start..];
        let len = if let Some(quoted) = v.strip_prefix('\'') {
            quoted.find('\'').map_or(v.len(), |end| end + 2)
        } else {
            v.find(|c: char| ends_token(c) || c == '&')
                .unwrap_or(v.len())
        };
        if &v[..len] != "***" && len > 0 {
            out.push_str(&text[copied..start]);
            out.push_str("***");
            copied = start + len;
        }
        from = start;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_wherever_quoted() {
        let secrets: Vec<String> = Vec::new();
        for (text, shown) in [
            (
                "error: unexpected argument 'postgres://u:S3cr%40t@h:5432/db' found",
                "error: unexpected argument 'postgres://u:***@h:5432/db' found",
            ),
            (
                "no snapshot at postgresql://u:a/b#c@h/db: run",
                "no snapshot at postgresql://u:***@h/db: run",
            ),
            ("two a@b@h", "two a@b@h"),
            (
                "postgres://u@h/db and x://h:1/y",
                "postgres://u@h/db and x://h:1/y",
            ),
            (
                "postgres://u:p@h?password=zz&x=1",
                "postgres://u:***@h?password=***&x=1",
            ),
            ("host=h password='a b' user=u", "host=h password=*** user=u"),
            ("postgres://u:***@h/db", "postgres://u:***@h/db"),
            (
                "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                "expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            ),
        ] {
            assert_eq!(redact(text, &secrets), shown, "{text}");
        }
    }

    #[test]
    fn secrets_from_arguments_are_masked_in_any_form() {
        let secrets = secrets_in(["pull", "--plan", "postgres://u:Pw%27q%20x@h/db", "x"]);
        assert!(secrets.contains(&"Pw'q x".to_string()), "{secrets:?}");
        // Cut at the quote, the URL masking alone would miss it.
        let text = "invalid value 'postgres://u:Pw'q x@h/db' and decoded Pw'q x";
        let shown = redact(text, &secrets);
        assert!(!shown.contains("Pw'q"), "{shown}");
        assert!(secrets_in(["host=h password='lo ng' user=u"]).contains(&"lo ng".to_string()));
        assert!(
            secrets_in(["postgres://u:ab@h"]).is_empty(),
            "short ones are left to the URL mask"
        );
    }
}
