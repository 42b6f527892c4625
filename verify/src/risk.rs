//! Phrases in a ticket's first message that call for step-up before anything else happens:
//! password resets, changes of email, phone or address, lost access. The list is the
//! operator's (`[verification] risk_phrases`); the default covers English, Russian, Spanish
//! and German. Matching ignores case, accents of the apostrophe and runs of whitespace.

/// The default phrases.
pub const DEFAULT_PHRASES: &[&str] = &[
    // en
    "reset my password",
    "password reset",
    "forgot my password",
    "change my email",
    "change my e-mail",
    "change my phone",
    "new phone number",
    "change my address",
    "change of address",
    "new address",
    "lost access",
    "can't log in",
    "cannot log in",
    "locked out",
    // ru
    "сбросить пароль",
    "сброс пароля",
    "забыл пароль",
    "сменить почту",
    "изменить почту",
    "сменить email",
    "изменить email",
    "сменить телефон",
    "изменить телефон",
    "новый номер",
    "сменить адрес",
    "изменить адрес",
    "потерял доступ",
    "нет доступа",
    // es
    "restablecer mi contraseña",
    "cambiar mi correo",
    "cambiar mi dirección",
    "perdí el acceso",
    // de
    "passwort zurücksetzen",
    "e-mail ändern",
    "adresse ändern",
    "zugang verloren",
];

/// A compiled list of phrases.
#[derive(Clone, Debug)]
pub struct RiskPhrases {
    phrases: Vec<String>,
}

fn normalise(s: &str) -> String {
    let lowered: String = s
        .chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' | '`' => '\'',
            other => other,
        })
        .flat_map(char::to_lowercase)
        .collect();
    lowered.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl RiskPhrases {
    pub fn new<S: AsRef<str>>(phrases: &[S]) -> RiskPhrases {
        RiskPhrases {
            phrases: phrases
                .iter()
                .map(|p| normalise(p.as_ref()))
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    pub fn default_set() -> RiskPhrases {
        RiskPhrases::new(DEFAULT_PHRASES)
    }

    /// The first phrase found in the text, if any.
    pub fn flags(&self, text: &str) -> Option<&str> {
        let t = normalise(text);
        self.phrases
            .iter()
            .find(|p| t.contains(p.as_str()))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_risky_requests_in_several_languages() {
        let r = RiskPhrases::default_set();
        assert_eq!(
            r.flags("Hi, I need to RESET   my password please"),
            Some("reset my password")
        );
        assert_eq!(
            r.flags("I can’t log in since yesterday"),
            Some("can't log in")
        );
        assert_eq!(
            r.flags("Здравствуйте, хочу сменить адрес доставки"),
            Some("сменить адрес")
        );
        assert_eq!(
            r.flags("Quiero cambiar mi dirección"),
            Some("cambiar mi dirección")
        );
        assert_eq!(r.flags("Where is my parcel?"), None);
    }

    #[test]
    fn the_list_is_configurable() {
        let r = RiskPhrases::new(&["refund to another card", "  "]);
        assert_eq!(
            r.flags("please refund to another card"),
            Some("refund to another card")
        );
        assert_eq!(r.flags("reset my password"), None);
    }
}
