//! Phrases in a ticket's first message that call for step-up before anything else happens:
//! password resets, changes of email, phone or address, lost access. The list is the
//! operator's (`[verification] risk_phrases`, `--risk-phrases`, `--risk-phrases-file`); the
//! default covers English, Russian, Spanish and German. Matching ignores case, the kind of
//! apostrophe and runs of whitespace.
//!
//! A phrase may name the action it calls for, `phrase => action` (`reset my password =>
//! reset_password`); with `auto_request_on_claim`, claiming a ticket flagged by such a phrase
//! asks the customer to verify for that action at once.

/// The default phrases, each with the action it calls for.
pub const DEFAULT_PHRASES: &[&str] = &[
    // en
    "reset my password => reset_password",
    "password reset => reset_password",
    "forgot my password => reset_password",
    "change my email => change_email",
    "change my e-mail => change_email",
    "change my phone => change_phone",
    "new phone number => change_phone",
    "change my address => change_address",
    "change of address => change_address",
    "new address => change_address",
    "lost access => reset_password",
    "can't log in => reset_password",
    "cannot log in => reset_password",
    "locked out => reset_password",
    // ru
    "сбросить пароль => reset_password",
    "сброс пароля => reset_password",
    "забыл пароль => reset_password",
    "сменить почту => change_email",
    "изменить почту => change_email",
    "сменить email => change_email",
    "изменить email => change_email",
    "сменить телефон => change_phone",
    "изменить телефон => change_phone",
    "новый номер => change_phone",
    "сменить адрес => change_address",
    "изменить адрес => change_address",
    "потерял доступ => reset_password",
    "нет доступа => reset_password",
    // es
    "restablecer mi contraseña => reset_password",
    "cambiar mi correo => change_email",
    "cambiar mi dirección => change_address",
    "perdí el acceso => reset_password",
    // de
    "passwort zurücksetzen => reset_password",
    "e-mail ändern => change_email",
    "adresse ändern => change_address",
    "zugang verloren => reset_password",
];

/// What separates a phrase from its action.
pub const ACTION_SEPARATOR: &str = "=>";

/// One phrase and the action it calls for, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskPhrase {
    /// Normalised (lower case, one space between words).
    pub phrase: String,
    pub action: Option<String>,
}

/// Why a configured phrase was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RiskPhraseError {
    #[error("a risk phrase is empty")]
    Empty,
    #[error("risk phrase {phrase:?}: {action:?} is not one of the configured actions")]
    UnknownAction { phrase: String, action: String },
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

impl RiskPhrase {
    /// `phrase` or `phrase => action`. The action is not checked here.
    pub fn parse(entry: &str) -> Result<RiskPhrase, RiskPhraseError> {
        let (phrase, action) = match entry.rsplit_once(ACTION_SEPARATOR) {
            Some((p, a)) => (p, Some(a.trim().to_string()).filter(|a| !a.is_empty())),
            None => (entry, None),
        };
        let phrase = normalise(phrase);
        if phrase.is_empty() {
            return Err(RiskPhraseError::Empty);
        }
        Ok(RiskPhrase { phrase, action })
    }
}

/// A compiled list of phrases.
#[derive(Clone, Debug)]
pub struct RiskPhrases {
    phrases: Vec<RiskPhrase>,
}

impl RiskPhrases {
    /// The operator's list: every entry must parse and name only actions in `actions`.
    pub fn configured<S: AsRef<str>>(
        entries: &[S],
        actions: &[String],
    ) -> Result<RiskPhrases, RiskPhraseError> {
        let mut phrases = Vec::with_capacity(entries.len());
        for e in entries {
            let p = RiskPhrase::parse(e.as_ref())?;
            if let Some(a) = &p.action {
                if !actions.iter().any(|x| x == a) {
                    return Err(RiskPhraseError::UnknownAction {
                        phrase: p.phrase,
                        action: a.clone(),
                    });
                }
            }
            phrases.push(p);
        }
        Ok(RiskPhrases { phrases })
    }

    /// The defaults; a phrase whose action is not in `actions` still flags, without an action.
    pub fn defaults(actions: &[String]) -> RiskPhrases {
        let phrases = DEFAULT_PHRASES
            .iter()
            .filter_map(|e| RiskPhrase::parse(e).ok())
            .map(|mut p| {
                if !p
                    .action
                    .as_ref()
                    .is_some_and(|a| actions.iter().any(|x| x == a))
                {
                    p.action = None;
                }
                p
            })
            .collect();
        RiskPhrases { phrases }
    }

    /// The first phrase found in the text, if any.
    pub fn flags(&self, text: &str) -> Option<&RiskPhrase> {
        let t = normalise(text);
        self.phrases.iter().find(|p| t.contains(p.phrase.as_str()))
    }

    /// The action a flagged phrase calls for.
    pub fn action_for(&self, phrase: &str) -> Option<&str> {
        let p = normalise(phrase);
        self.phrases
            .iter()
            .find(|x| x.phrase == p)
            .and_then(|x| x.action.as_deref())
    }

    pub fn len(&self) -> usize {
        self.phrases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }
}

/// The phrases of a phrases file: one a line, blank lines and lines starting with `#` skipped.
pub fn parse_file(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions() -> Vec<String> {
        [
            "change_address",
            "change_email",
            "change_phone",
            "reveal_order_history",
            "reset_password",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn flags_risky_requests_in_several_languages() {
        let r = RiskPhrases::defaults(&actions());
        let hit = |t: &str| r.flags(t).map(|p| (p.phrase.as_str(), p.action.as_deref()));
        assert_eq!(
            hit("Hi, I need to RESET   my password please"),
            Some(("reset my password", Some("reset_password")))
        );
        assert_eq!(
            hit("I can’t log in since yesterday"),
            Some(("can't log in", Some("reset_password")))
        );
        assert_eq!(
            hit("Здравствуйте, хочу сменить адрес доставки"),
            Some(("сменить адрес", Some("change_address")))
        );
        assert_eq!(
            hit("Quiero cambiar mi dirección"),
            Some(("cambiar mi dirección", Some("change_address")))
        );
        assert_eq!(hit("Where is my parcel?"), None);
        assert_eq!(r.action_for("Сменить  адрес"), Some("change_address"));
    }

    #[test]
    fn every_default_phrase_names_a_default_action() {
        let r = RiskPhrases::configured(DEFAULT_PHRASES, &actions()).unwrap();
        assert_eq!(r.len(), DEFAULT_PHRASES.len());
        assert!(r.phrases.iter().all(|p| p.action.is_some()));
    }

    #[test]
    fn default_actions_that_are_not_configured_only_flag() {
        let only = vec!["change_address".to_string()];
        let r = RiskPhrases::defaults(&only);
        let p = r.flags("please reset my password").unwrap();
        assert_eq!(p.action, None);
        assert_eq!(
            r.flags("my new address is").unwrap().action.as_deref(),
            Some("change_address")
        );
    }

    #[test]
    fn the_list_is_configurable_and_checked() {
        let r = RiskPhrases::configured(
            &["Refund to another card => reset_password", "wire the money"],
            &actions(),
        )
        .unwrap();
        let p = r.flags("please refund to another card").unwrap();
        assert_eq!(p.phrase, "refund to another card");
        assert_eq!(p.action.as_deref(), Some("reset_password"));
        assert_eq!(r.flags("wire the money now").unwrap().action, None);
        assert_eq!(r.flags("reset my password"), None, "replaces the defaults");
        assert_eq!(
            RiskPhrases::configured(&["x => launch_rockets"], &actions()).unwrap_err(),
            RiskPhraseError::UnknownAction {
                phrase: "x".into(),
                action: "launch_rockets".into()
            }
        );
        assert_eq!(
            RiskPhrases::configured(&["  => reset_password"], &actions()).unwrap_err(),
            RiskPhraseError::Empty
        );
    }

    #[test]
    fn a_phrases_file_has_one_a_line_with_comments() {
        let lines = parse_file("# risky\n\n  wire the money  \nсменить адрес => change_address\n");
        assert_eq!(lines, ["wire the money", "сменить адрес => change_address"]);
    }
}
