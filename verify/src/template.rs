//! The email that carries a code. It says which company asked, what for, how long the code
//! lasts, and that staff will never ask for it: the one sentence that defeats most social
//! engineering. One text per language; an unknown language falls back to English.

/// What goes into the email.
pub struct CodeEmail<'a> {
    /// The company the customer is talking to, as configured.
    pub company: &'a str,
    /// The action's name from the configured list, e.g. `change_address`.
    pub action: &'a str,
    pub code: &'a str,
    pub minutes: u64,
}

/// A rendered email.
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Languages with their own text.
pub const LANGUAGES: &[&str] = &["en", "ru"];

/// The action in words, for the known actions; others as their name with spaces.
fn action_words(lang: &str, action: &str) -> String {
    let known = match (lang, action) {
        ("ru", "change_address") => "изменение адреса",
        ("ru", "change_email") => "изменение адреса электронной почты",
        ("ru", "change_phone") => "изменение номера телефона",
        ("ru", "reveal_order_history") => "просмотр истории заказов",
        ("ru", "reset_password") => "сброс пароля",
        (_, "change_address") => "a change of your address",
        (_, "change_email") => "a change of your email address",
        (_, "change_phone") => "a change of your phone number",
        (_, "reveal_order_history") => "access to your order history",
        (_, "reset_password") => "a password reset",
        _ => "",
    };
    if known.is_empty() {
        action.replace('_', " ")
    } else {
        known.to_string()
    }
}

pub fn render(lang: &str, e: &CodeEmail<'_>) -> Rendered {
    let what = action_words(lang, e.action);
    match lang {
        "ru" => Rendered {
            subject: format!("{}: код подтверждения {}", e.company, e.code),
            body: format!(
                "Здравствуйте!\n\n\
                 Служба поддержки {company} просит подтвердить, что это вы: {what}.\n\n\
                 Ваш код: {code}\n\n\
                 Введите его в окне чата на сайте. Код действует {minutes} минут и подходит один раз.\n\n\
                 Сотрудники {company} никогда не спрашивают этот код — ни в чате, ни по телефону, \
                 ни по почте. Если его просят назвать, это мошенник.\n\
                 Если вы не обращались в поддержку, просто проигнорируйте это письмо.\n",
                company = e.company,
                code = e.code,
                minutes = e.minutes,
            ),
        },
        _ => Rendered {
            subject: format!("{}: your verification code is {}", e.company, e.code),
            body: format!(
                "Hello,\n\n\
                 {company} support asked to confirm it is really you, for {what}.\n\n\
                 Your code: {code}\n\n\
                 Enter it in the chat window on the website. It is valid for {minutes} minutes \
                 and works once.\n\n\
                 {company} staff will never ask you for this code, not in chat, not by phone, \
                 not by email. Anyone who asks for it is not us.\n\
                 If you did not contact support, ignore this email.\n",
                company = e.company,
                code = e.code,
                minutes = e.minutes,
            ),
        },
    }
}

/// Masks an email address for display: the first character of the local part and the domain,
/// `a***@example.com`.
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> CodeEmail<'static> {
        CodeEmail {
            company: "ACME",
            action: "change_address",
            code: "123456",
            minutes: 10,
        }
    }

    #[test]
    fn english_names_the_company_the_action_and_the_warning() {
        let r = render("en", &email());
        assert!(r.subject.contains("ACME"));
        assert!(r.body.contains("123456"));
        assert!(r.body.contains("a change of your address"));
        assert!(r.body.contains("will never ask you for this code"));
        assert!(r.body.contains("10 minutes"));
    }

    #[test]
    fn russian_has_its_own_text_and_unknown_languages_fall_back() {
        let r = render("ru", &email());
        assert!(r.body.contains("никогда не спрашивают этот код"));
        assert!(r.body.contains("изменение адреса"));
        assert!(r.body.contains("123456"));
        let fallback = render("xx", &email());
        assert!(fallback.body.contains("will never ask"));
    }

    #[test]
    fn unknown_actions_are_named_in_words() {
        let mut e = email();
        e.action = "refund_to_new_card";
        assert!(render("en", &e).body.contains("refund to new card"));
    }

    #[test]
    fn masks_addresses() {
        assert_eq!(mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
