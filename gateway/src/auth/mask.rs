//! Masking of customer contact details for staff screens: `jane@example.com` becomes
//! `j***@example.com`, `+1 415-555-0132` becomes `+1 ***-***-0132`. The clear value is shown
//! only through a reveal, which needs a permission and a reason and is audited.

/// The first character of the local part, then `***`, then the domain. Anything that is not
/// an address is hidden entirely.
pub fn email(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        _ => "***".to_string(),
    }
}

/// Keeps a leading `+<country code>` followed by a separator and the last four digits; every
/// other digit becomes `*`, runs of them one `***` group each, separators stay. A number with
/// fewer than seven digits is hidden entirely.
pub fn phone(value: &str) -> String {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    if digits < 7 {
        return "***".to_string();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value.trim();
    if let Some(after_plus) = rest.strip_prefix('+') {
        let cc_len = after_plus.chars().take_while(char::is_ascii_digit).count();
        let next = after_plus[cc_len..].chars().next();
        if (1..=3).contains(&cc_len) && next.is_some_and(|c| !c.is_ascii_digit()) {
            out.push('+');
            out.push_str(&after_plus[..cc_len]);
            rest = &after_plus[cc_len..];
        } else {
            out.push('+');
            rest = after_plus;
        }
    }
    let total = rest.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    let mut in_group = false;
    for c in rest.chars() {
        if c.is_ascii_digit() {
            seen += 1;
            if seen > total.saturating_sub(4) {
                out.push(c);
                in_group = false;
            } else if !in_group {
                out.push_str("***");
                in_group = true;
            }
        } else {
            out.push(c);
            in_group = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_keep_the_first_letter_and_the_domain() {
        assert_eq!(email("jane@example.com"), "j***@example.com");
        assert_eq!(email("j@example.com"), "j***@example.com");
        assert_eq!(email("not-an-address"), "***");
        assert_eq!(email("@example.com"), "***");
    }

    #[test]
    fn phones_keep_the_country_code_and_the_last_four_digits() {
        assert_eq!(phone("+1 415-555-0132"), "+1 ***-***-0132");
        assert_eq!(phone("+44 20 7946 0958"), "+44 *** *** 0958");
        assert_eq!(phone("4155550132"), "***0132");
        assert_eq!(phone("+14155550132"), "+***0132");
        assert_eq!(phone("12345"), "***");
    }
}
