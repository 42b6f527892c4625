//! The email that carries a code. It says which company asked, what for, how long the code
//! lasts, and that staff will never ask for it: the one sentence that defeats most social
//! engineering. One text per language. The code is in the body only, never in the subject,
//! which phones show on a locked screen.

use std::fmt;

/// A language with its own email text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Language {
    En,
    Ru,
    /// Simplified Chinese.
    Zh,
    /// Persian.
    Fa,
}

/// The tags of the languages with their own text, for messages and docs.
pub const LANGUAGES: &[&str] = &["en", "ru", "zh", "fa"];

impl Language {
    /// The language of a BCP 47 tag (`ru`, `ru-RU`, `zh-Hans-CN`, `FA`), if it has a text:
    /// the primary subtag decides, case-insensitively.
    pub fn parse(tag: &str) -> Option<Language> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Some(match primary.as_str() {
            "en" => Language::En,
            "ru" => Language::Ru,
            "zh" => Language::Zh,
            "fa" => Language::Fa,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ru => "ru",
            Language::Zh => "zh",
            Language::Fa => "fa",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a string is shaped like a language tag at all (letters, digits, `-`, `_`; at most
/// 35 characters), as opposed to one without its own text.
pub fn is_language_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 35
        && tag.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

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

/// The action in words, for the known actions; others as their name with spaces.
fn action_words(lang: Language, action: &str) -> String {
    use Language::*;
    let known = match (lang, action) {
        (Ru, "change_address") => "изменение адреса",
        (Ru, "change_email") => "изменение адреса электронной почты",
        (Ru, "change_phone") => "изменение номера телефона",
        (Ru, "reveal_order_history") => "просмотр истории заказов",
        (Ru, "reset_password") => "сброс пароля",
        (Zh, "change_address") => "更改您的地址",
        (Zh, "change_email") => "更改您的电子邮箱地址",
        (Zh, "change_phone") => "更改您的电话号码",
        (Zh, "reveal_order_history") => "查看您的订单记录",
        (Zh, "reset_password") => "重置您的密码",
        (Fa, "change_address") => "تغییر نشانی شما",
        (Fa, "change_email") => "تغییر نشانی ایمیل شما",
        (Fa, "change_phone") => "تغییر شمارهٔ تلفن شما",
        (Fa, "reveal_order_history") => "دسترسی به سابقهٔ سفارش‌های شما",
        (Fa, "reset_password") => "بازنشانی گذرواژهٔ شما",
        (En, "change_address") => "a change of your address",
        (En, "change_email") => "a change of your email address",
        (En, "change_phone") => "a change of your phone number",
        (En, "reveal_order_history") => "access to your order history",
        (En, "reset_password") => "a password reset",
        _ => "",
    };
    if known.is_empty() {
        action.replace('_', " ")
    } else {
        known.to_string()
    }
}

/// The email in `lang`. The code is written in ASCII digits in every language: it is what the
/// widget accepts, and what the customer types.
pub fn render(lang: Language, e: &CodeEmail<'_>) -> Rendered {
    let what = action_words(lang, e.action);
    let (company, code, minutes) = (e.company, e.code, e.minutes);
    match lang {
        Language::Ru => Rendered {
            subject: format!("{company}: код подтверждения"),
            body: format!(
                "Здравствуйте!\n\n\
                 Служба поддержки {company} просит подтвердить, что это вы: {what}.\n\n\
                 Ваш код: {code}\n\n\
                 Введите его в окне чата на сайте {company}. Код действует {minutes} минут и \
                 подходит один раз.\n\n\
                 Сотрудники {company} никогда не спрашивают этот код — ни в чате, ни по телефону, \
                 ни по почте. Если его просят назвать, это мошенник.\n\
                 Если вы не обращались в поддержку {company}, просто проигнорируйте это письмо.\n"
            ),
        },
        Language::Zh => Rendered {
            subject: format!("{company}：您的验证码"),
            body: format!(
                "您好：\n\n\
                 {company} 客服请求确认是您本人在操作：{what}。\n\n\
                 您的验证码：{code}\n\n\
                 请在 {company} 网站的聊天窗口中输入。验证码 {minutes} 分钟内有效，且只能使用一次。\n\n\
                 {company} 的工作人员绝不会向您索要此验证码——无论是在聊天中、电话中还是邮件中。\
                 任何索要验证码的人都不是我们。\n\
                 如果您没有联系过 {company} 客服，请忽略此邮件。\n"
            ),
        },
        Language::Fa => Rendered {
            subject: format!("{company}: کد تأیید شما"),
            body: format!(
                "سلام،\n\n\
                 پشتیبانی {company} درخواست کرده است تأیید کنید که خودتان هستید، برای {what}.\n\n\
                 کد شما: {code}\n\n\
                 آن را در پنجرهٔ گفت‌وگوی وب‌سایت {company} وارد کنید. این کد {minutes} دقیقه \
                 اعتبار دارد و فقط یک بار به کار می‌آید.\n\n\
                 کارکنان {company} هرگز این کد را از شما نمی‌خواهند: نه در گفت‌وگو، نه تلفنی و نه \
                 با ایمیل. هر کسی که آن را بخواهد از طرف ما نیست.\n\
                 اگر با پشتیبانی {company} تماس نگرفته‌اید، این ایمیل را نادیده بگیرید.\n"
            ),
        },
        Language::En => Rendered {
            subject: format!("{company}: your verification code"),
            body: format!(
                "Hello,\n\n\
                 {company} support asked to confirm it is really you, for {what}.\n\n\
                 Your code: {code}\n\n\
                 Enter it in the chat window on the {company} website. It is valid for {minutes} \
                 minutes and works once.\n\n\
                 {company} staff will never ask you for this code, not in chat, not by phone, \
                 not by email. Anyone who asks for it is not us.\n\
                 If you did not contact {company} support, ignore this email.\n"
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

    const ALL: [Language; 4] = [Language::En, Language::Ru, Language::Zh, Language::Fa];

    #[test]
    fn english_names_the_company_the_action_and_the_warning() {
        let r = render(Language::En, &email());
        assert_eq!(r.subject, "ACME: your verification code");
        assert!(r.body.contains("Your code: 123456"));
        assert!(r.body.contains("a change of your address"));
        assert!(r
            .body
            .contains("ACME staff will never ask you for this code"));
        assert!(r.body.contains("10 minutes"));
    }

    #[test]
    fn every_language_has_its_own_text_with_the_same_parts() {
        let warnings = [
            (
                Language::Ru,
                "никогда не спрашивают этот код",
                "изменение адреса",
            ),
            (Language::Zh, "绝不会向您索要此验证码", "更改您的地址"),
            (
                Language::Fa,
                "هرگز این کد را از شما نمی‌خواهند",
                "تغییر نشانی شما",
            ),
        ];
        for (lang, never_ask, action) in warnings {
            let r = render(lang, &email());
            assert!(r.body.contains(never_ask), "{lang}: {}", r.body);
            assert!(r.body.contains(action), "{lang}: {}", r.body);
            assert!(r.body.contains("123456"), "{lang}");
            assert!(r.body.contains("10"), "{lang}: minutes");
            assert!(
                r.subject.contains("ACME") && r.body.contains("ACME"),
                "{lang}"
            );
            assert!(!r.body.contains("will never ask"), "{lang} is not English");
        }
    }

    #[test]
    fn the_code_is_never_in_the_subject() {
        for lang in ALL {
            let r = render(lang, &email());
            assert!(
                !r.subject.chars().any(|c| c.is_ascii_digit()),
                "{lang}: {}",
                r.subject
            );
        }
    }

    #[test]
    fn language_tags_choose_a_text_by_their_primary_subtag() {
        assert_eq!(Language::parse("ru"), Some(Language::Ru));
        assert_eq!(Language::parse("ru-RU"), Some(Language::Ru));
        assert_eq!(Language::parse("zh-Hans-CN"), Some(Language::Zh));
        assert_eq!(Language::parse("zh_TW"), Some(Language::Zh));
        assert_eq!(Language::parse("FA"), Some(Language::Fa));
        assert_eq!(Language::parse("en-GB"), Some(Language::En));
        assert_eq!(Language::parse("pt-BR"), None);
        assert_eq!(Language::parse(""), None);
        for l in LANGUAGES {
            assert_eq!(Language::parse(l).map(Language::as_str), Some(*l));
        }
        assert!(is_language_tag("zh-Hans-CN") && is_language_tag("pt"));
        assert!(!is_language_tag("") && !is_language_tag("ru RU") && !is_language_tag("-ru"));
        assert!(!is_language_tag(&"a".repeat(36)));
    }

    #[test]
    fn unknown_actions_are_named_in_words() {
        let mut e = email();
        e.action = "refund_to_new_card";
        assert!(render(Language::En, &e).body.contains("refund to new card"));
    }

    #[test]
    fn masks_addresses() {
        assert_eq!(mask_email("ada@example.com"), "a***@example.com");
        assert_eq!(mask_email("nonsense"), "***");
    }
}
