//! The `[verification]` settings: where code emails go (SMTP or the outbox), what the email
//! says, which actions need step-up, the phrases that flag a ticket, the server key, and which
//! staff roles must log in with a second factor. Flags and `DESKGATE_*` variables override the
//! file, as everywhere else.

use crate::store::Role;
use clap::Args;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use verify::mail::TlsMode;
use verify::risk::RiskPhrases;
use verify::template::Language;
use verify::Rules;

/// Flags of `deskgate serve` for step-up verification.
#[derive(Debug, Default, Args)]
pub struct VerificationArgs {
    /// SMTP server for code emails; without one, emails go to <data>/outbox [default: none]
    #[arg(long, env = "DESKGATE_SMTP_HOST", value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port [default: 587 for starttls, 465 for implicit, 25 for none]
    #[arg(long, env = "DESKGATE_SMTP_PORT", value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// How the SMTP connection is secured: starttls, implicit or none [default: starttls]
    #[arg(long, env = "DESKGATE_SMTP_TLS", value_name = "MODE")]
    pub smtp_tls: Option<TlsMode>,
    /// SMTP user name
    #[arg(long, env = "DESKGATE_SMTP_USERNAME", value_name = "NAME")]
    pub smtp_username: Option<String>,
    /// File holding the SMTP user name (a mounted secret)
    #[arg(long, env = "DESKGATE_SMTP_USERNAME_FILE", value_name = "FILE")]
    pub smtp_username_file: Option<PathBuf>,
    /// SMTP password; prefer --smtp-password-file
    #[arg(
        long,
        env = "DESKGATE_SMTP_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub smtp_password: Option<String>,
    /// File holding the SMTP password
    #[arg(long, env = "DESKGATE_SMTP_PASSWORD_FILE", value_name = "FILE")]
    pub smtp_password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for the SMTP server
    #[arg(long, env = "DESKGATE_SMTP_CA_FILE", value_name = "FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Longest time one code email may take to send, connecting included [default: 10s]
    #[arg(long, env = "DESKGATE_SMTP_TIMEOUT", value_parser = humantime::parse_duration)]
    pub smtp_timeout: Option<Duration>,
    /// From address of code emails [default: "<company> <no-reply@localhost>"]
    #[arg(long, env = "DESKGATE_SMTP_FROM", value_name = "ADDRESS")]
    pub smtp_from: Option<String>,
    /// Company named in code emails [default: Support]
    #[arg(long, env = "DESKGATE_COMPANY_NAME", value_name = "NAME")]
    pub company_name: Option<String>,
    /// Language of code emails for customers whose own language is not known: en, ru, zh or fa [default: en]
    #[arg(long, env = "DESKGATE_EMAIL_LANGUAGE", value_name = "LANG")]
    pub email_language: Option<String>,
    /// Actions that need a verified customer, comma-separated [default: change_address,change_email,change_phone,reveal_order_history,reset_password,take_payment]
    #[arg(
        long,
        env = "DESKGATE_VERIFY_ACTIONS",
        value_name = "LIST",
        value_delimiter = ','
    )]
    pub verify_actions: Option<Vec<String>>,
    /// Phrases that flag a ticket's first message for step-up, separated by `;`, each optionally `phrase => action`; replaces the default list [default: English, Russian, Spanish and German phrases]
    #[arg(
        long,
        env = "DESKGATE_RISK_PHRASES",
        value_name = "LIST",
        value_delimiter = ';'
    )]
    pub risk_phrases: Option<Vec<String>>,
    /// File of risk phrases, one a line (`phrase` or `phrase => action`; `#` starts a comment line)
    #[arg(long, env = "DESKGATE_RISK_PHRASES_FILE", value_name = "FILE")]
    pub risk_phrases_file: Option<PathBuf>,
    /// Ask the customer to verify as soon as an agent claims a flagged ticket, for the action its phrase names [default: off]
    #[arg(long, env = "DESKGATE_AUTO_REQUEST_ON_CLAIM", num_args = 0..=1, default_missing_value = "true")]
    pub auto_request_on_claim: Option<bool>,
    /// File with the 32-byte server key for codes and sealed seeds, hex [default: <data>/keys/verify.key, created on first run]
    #[arg(long, env = "DESKGATE_VERIFY_KEY_FILE", value_name = "FILE")]
    pub verify_key_file: Option<PathBuf>,
    /// Require a second factor for agents and leads too [default: off; supervisors, approvers and admins always]
    #[arg(long, env = "DESKGATE_MFA_FOR_AGENTS", num_args = 0..=1, default_missing_value = "true")]
    pub mfa_for_agents: Option<bool>,
}

/// The `[verification]` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationFile {
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<TlsMode>,
    smtp_username: Option<String>,
    smtp_username_file: Option<PathBuf>,
    smtp_password: Option<String>,
    smtp_password_file: Option<PathBuf>,
    smtp_ca_file: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    smtp_timeout: Option<Duration>,
    smtp_from: Option<String>,
    company_name: Option<String>,
    email_language: Option<String>,
    actions: Option<Vec<String>>,
    risk_phrases: Option<Vec<String>>,
    risk_phrases_file: Option<PathBuf>,
    auto_request_on_claim: Option<bool>,
    key_file: Option<PathBuf>,
    mfa_for_agents: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    verified_for: Option<Duration>,
    daily_failure_cap: Option<u32>,
}

/// An SMTP server to deliver through.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub ca_file: Option<PathBuf>,
    /// Longest time one send may take.
    pub timeout: Duration,
}

/// Longest time one code email may take to send, by default.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct VerificationConfig {
    /// `None`: code emails go to the file outbox under the data dir.
    pub smtp: Option<SmtpConfig>,
    pub from: String,
    pub company: String,
    /// The language of code emails when neither the customer's nor their site's is known.
    pub language: Language,
    pub actions: Vec<String>,
    /// The operator's risk phrases (`phrase` or `phrase => action`); `None`: the defaults of
    /// `verify::risk`, whose actions count only where they are configured.
    pub risk_phrases: Option<Vec<String>>,
    /// Claiming a flagged ticket asks the customer to verify for its phrase's action.
    pub auto_request_on_claim: bool,
    pub key_file: Option<PathBuf>,
    /// Roles that must log in with a second factor.
    pub mfa_roles: Vec<Role>,
    pub rules: Rules,
}

pub const DEFAULT_ACTIONS: &[&str] = &[
    "change_address",
    "change_email",
    "change_phone",
    "reveal_order_history",
    "reset_password",
    "take_payment",
];

/// Roles that always need a second factor.
pub const ALWAYS_MFA: &[Role] = &[Role::Supervisor, Role::Approver, Role::Admin];

impl Default for VerificationConfig {
    fn default() -> Self {
        VerificationConfig {
            smtp: None,
            from: "Support <no-reply@localhost>".into(),
            company: "Support".into(),
            language: Language::En,
            actions: DEFAULT_ACTIONS.iter().map(|s| s.to_string()).collect(),
            risk_phrases: None,
            auto_request_on_claim: false,
            key_file: None,
            mfa_roles: ALWAYS_MFA.to_vec(),
            rules: Rules::default(),
        }
    }
}

impl VerificationConfig {
    /// Merges flags over the file over the defaults; the error names the offending key.
    pub fn load(
        args: &VerificationArgs,
        file: Option<VerificationFile>,
    ) -> Result<VerificationConfig, (&'static str, String)> {
        let f = file.unwrap_or_default();
        let mut c = VerificationConfig::default();
        if let Some(v) = args.company_name.clone().or(f.company_name) {
            c.company = v;
        }
        c.from = args.smtp_from.clone().or(f.smtp_from).unwrap_or_else(|| {
            format!("{} <no-reply@localhost>", c.company.replace(['<', '>'], ""))
        });
        if let Some(v) = args.email_language.clone().or(f.email_language) {
            c.language = parse_language(&v).map_err(|e| ("email_language", e))?;
        }
        if let Some(v) = args.verify_actions.clone().or(f.actions) {
            let v: Vec<String> = v.into_iter().map(|a| a.trim().to_string()).collect();
            if v.iter().any(|a| !valid_action(a)) {
                return Err((
                    "actions",
                    "each action is 1-64 characters of a-z, 0-9 and _".into(),
                ));
            }
            c.actions = v;
        }
        c.risk_phrases =
            match phrase_list(args.risk_phrases.clone(), args.risk_phrases_file.clone())? {
                Some(list) => Some(list),
                None => phrase_list(f.risk_phrases, f.risk_phrases_file)?,
            };
        c.risk_phrases()
            .map_err(|e| ("risk_phrases", e.to_string()))?;
        c.auto_request_on_claim = args
            .auto_request_on_claim
            .or(f.auto_request_on_claim)
            .unwrap_or(false);
        c.key_file = args.verify_key_file.clone().or(f.key_file);
        if args.mfa_for_agents.or(f.mfa_for_agents).unwrap_or(false) {
            c.mfa_roles.extend([Role::Agent, Role::Lead]);
        }
        if let Some(v) = f.verified_for {
            c.rules.verified_for = v;
        }
        if let Some(v) = f.daily_failure_cap {
            if v == 0 {
                return Err(("daily_failure_cap", "must be at least 1".into()));
            }
            c.rules.daily_failure_cap = v;
        }
        let password = secret_value(
            "smtp_password",
            args.smtp_password.clone().or(f.smtp_password),
            args.smtp_password_file.clone().or(f.smtp_password_file),
        )?
        .map(SecretString::from);
        let username = secret_value(
            "smtp_username",
            args.smtp_username.clone().or(f.smtp_username),
            args.smtp_username_file.clone().or(f.smtp_username_file),
        )?;
        let timeout = args
            .smtp_timeout
            .or(f.smtp_timeout)
            .unwrap_or(DEFAULT_SMTP_TIMEOUT);
        if timeout.is_zero() {
            return Err(("smtp_timeout", "must be more than 0s".into()));
        }
        let tls = args.smtp_tls.or(f.smtp_tls).unwrap_or(TlsMode::Starttls);
        if let Some(host) = args.smtp_host.clone().or(f.smtp_host) {
            let port = args.smtp_port.or(f.smtp_port).unwrap_or(match tls {
                TlsMode::Starttls => 587,
                TlsMode::Implicit => 465,
                TlsMode::None => 25,
            });
            if username.is_some() != password.is_some() {
                return Err((
                    "smtp_username",
                    "give both an SMTP username and password, or neither".into(),
                ));
            }
            c.smtp = Some(SmtpConfig {
                host,
                port,
                tls,
                username,
                password,
                ca_file: args.smtp_ca_file.clone().or(f.smtp_ca_file),
                timeout,
            });
        }
        Ok(c)
    }

    /// The compiled risk phrases; an error names a phrase that is empty or whose action is
    /// not configured.
    pub fn risk_phrases(&self) -> Result<RiskPhrases, verify::risk::RiskPhraseError> {
        match &self.risk_phrases {
            None => Ok(RiskPhrases::defaults(&self.actions)),
            Some(list) => RiskPhrases::configured(list, &self.actions),
        }
    }

    pub fn is_action(&self, name: &str) -> bool {
        self.actions.iter().any(|a| a == name)
    }

    pub fn requires_mfa(&self, role: Role) -> bool {
        self.mfa_roles.contains(&role)
    }
}

/// Risk phrases given as a list or as a file of them (one a line), not both.
fn phrase_list(
    list: Option<Vec<String>>,
    file: Option<PathBuf>,
) -> Result<Option<Vec<String>>, (&'static str, String)> {
    match (list, file) {
        (Some(_), Some(_)) => Err((
            "risk_phrases",
            "give risk_phrases or risk_phrases_file, not both".into(),
        )),
        (Some(l), None) => Ok(Some(
            l.into_iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        )),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                (
                    "risk_phrases_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Ok(Some(verify::risk::parse_file(&text)))
        }
        (None, None) => Ok(None),
    }
}

/// A setting given as a value or as a file holding it (`<key>` or `<key>_file`), not both.
/// The file's trailing line break is not part of the value.
pub(crate) fn secret_value(
    key: &'static str,
    value: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<String>, (&'static str, String)> {
    match (value, file) {
        (Some(_), Some(_)) => Err((key, format!("give {key} or {key}_file, not both"))),
        (Some(v), None) => Ok(Some(v)),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| (key, format!("cannot read {}: {e}", path.display())))?;
            let v = text.trim_end_matches(['\r', '\n']).to_string();
            if v.is_empty() {
                return Err((key, format!("{} is empty", path.display())));
            }
            Ok(Some(v))
        }
        (None, None) => Ok(None),
    }
}

/// A configured email language: one with its own text (`ru`, or a tag such as `ru-RU`).
pub fn parse_language(v: &str) -> Result<Language, String> {
    Language::parse(v).ok_or_else(|| {
        format!(
            "{v:?} is not one of {}",
            verify::template::LANGUAGES.join(", ")
        )
    })
}

fn valid_action(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 64
        && a.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_send_to_the_outbox_and_protect_senior_roles() {
        let c = VerificationConfig::load(&VerificationArgs::default(), None).unwrap();
        assert!(c.smtp.is_none());
        assert!(c.requires_mfa(Role::Admin) && c.requires_mfa(Role::Supervisor));
        assert!(c.requires_mfa(Role::Approver) && !c.requires_mfa(Role::Agent));
        assert!(c.is_action("change_address"));
    }

    #[test]
    fn flags_win_and_the_password_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let args = VerificationArgs {
            smtp_host: Some("mail.test".into()),
            smtp_tls: Some(TlsMode::Implicit),
            smtp_username: Some("desk".into()),
            smtp_password_file: Some(pw),
            mfa_for_agents: Some(true),
            ..Default::default()
        };
        let file: VerificationFile =
            toml::from_str("smtp_host = \"ignored.test\"\ncompany_name = \"ACME\"\n").unwrap();
        let c = VerificationConfig::load(&args, Some(file)).unwrap();
        let smtp = c.smtp.clone().unwrap();
        assert_eq!((smtp.host.as_str(), smtp.port), ("mail.test", 465));
        use secrecy::ExposeSecret;
        assert_eq!(smtp.password.unwrap().expose_secret(), "s3cret");
        assert_eq!(c.company, "ACME");
        assert!(c.requires_mfa(Role::Agent));
    }

    #[test]
    fn the_username_may_come_from_a_file_and_the_timeout_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let (user, pw) = (dir.path().join("user"), dir.path().join("pw"));
        std::fs::write(&user, "mailer\n").unwrap();
        std::fs::write(&pw, "s3cret").unwrap();
        let file: VerificationFile = toml::from_str(&format!(
            "smtp_host = \"mail.test\"\nsmtp_username_file = {user:?}\n\
             smtp_password_file = {pw:?}\nsmtp_timeout = \"3s\"\n"
        ))
        .unwrap();
        let c = VerificationConfig::load(&VerificationArgs::default(), Some(file)).unwrap();
        let smtp = c.smtp.unwrap();
        assert_eq!(smtp.username.as_deref(), Some("mailer"));
        assert_eq!(smtp.timeout, Duration::from_secs(3));
        let defaults = VerificationConfig::load(
            &VerificationArgs {
                smtp_host: Some("mail.test".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(defaults.smtp.unwrap().timeout, Duration::from_secs(10));

        let both = VerificationArgs {
            smtp_host: Some("mail.test".into()),
            smtp_username: Some("a".into()),
            smtp_username_file: Some(user.clone()),
            smtp_password_file: Some(pw.clone()),
            ..Default::default()
        };
        let e = VerificationConfig::load(&both, None).unwrap_err();
        assert_eq!(e.0, "smtp_username");
        assert!(e.1.contains("not both"), "{}", e.1);
        std::fs::write(&user, "\n").unwrap();
        let empty = VerificationArgs {
            smtp_host: Some("mail.test".into()),
            smtp_username_file: Some(user),
            smtp_password_file: Some(pw),
            ..Default::default()
        };
        let e = VerificationConfig::load(&empty, None).unwrap_err();
        assert!(e.1.contains("is empty"), "{}", e.1);
        let missing = VerificationArgs {
            smtp_host: Some("mail.test".into()),
            smtp_username: Some("a".into()),
            smtp_password_file: Some(dir.path().join("nope")),
            ..Default::default()
        };
        let e = VerificationConfig::load(&missing, None).unwrap_err();
        assert!(e.1.contains("cannot read"), "{}", e.1);
    }

    #[test]
    fn bad_values_name_their_key() {
        let file: VerificationFile = toml::from_str("actions = [\"Change Address\"]").unwrap();
        let e = VerificationConfig::load(&VerificationArgs::default(), Some(file)).unwrap_err();
        assert_eq!(e.0, "actions");
        assert!(toml::from_str::<VerificationFile>("smtp_hots = \"x\"").is_err());
    }
}
