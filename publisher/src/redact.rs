//! What a job's command line may carry into its events: `jobs.record_command`.
//!
//! A job's `job_start` event holds its command line, and events are stored in `events.log`,
//! served on `/events` (:9000), published on MQTT and shown by the Pi (:9100, the dashboard,
//! Grafana annotations). `mysqldump -pS3cret …` would put the password in all of them, so by
//! default ([`RecordCommand::Redacted`]) the values of options and variables that carry
//! secrets are replaced by [`MASK`] before the event is written.
//!
//! The redaction is word by word: each argument is split on white space (an argument of
//! `sh -c` is a whole command line) and each word is checked against these rules (a value
//! that is a separate argument is masked whole):
//! - `-pVALUE` (mysql's password, attached): `-p***`. A bare `-p` is left alone, and so is the
//!   word after it (mysql then prompts, and that word is the database).
//! - a long option whose name holds `password`, `passwd`, `passphrase`, `secret`, `token`,
//!   `apikey`/`api-key`, or ends in `-key`/`_key`: `--password=***`, or `--password ***`
//!   (the next word, unless it is an option). Names ending in `-file`, `-path`, `-fd`,
//!   `-command` or `-cmd` and names starting with `no-` carry no secret and are kept.
//! - a variable assignment `NAME=VALUE` with such a name (`PGPASSWORD=…`, `API_KEY=…`,
//!   `AWS_SECRET_ACCESS_KEY=…`, `GITHUB_TOKEN=…`): `NAME=***`.
//! - the password of a URL's credentials: `https://user:***@host/`.
//!
//! It is best effort: a secret split over quoted words, or passed in a form no rule knows
//! (`sshpass -p S3cret`), is not recognised. `name-only` records just the program's name.

use serde::{Deserialize, Serialize};

/// What replaces a secret.
pub const MASK: &str = "***";

/// `jobs.record_command`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordCommand {
    /// The command line with secrets masked (the default).
    #[default]
    Redacted,
    /// The command line as given.
    Full,
    /// Only the program's file name (`mysqldump`).
    NameOnly,
}

impl RecordCommand {
    /// The command line to put in the `job_start` event.
    pub fn apply(self, argv: &[String]) -> Vec<String> {
        match self {
            RecordCommand::Full => argv.to_vec(),
            RecordCommand::Redacted => redact_command(argv),
            RecordCommand::NameOnly => argv
                .first()
                .map(|program| {
                    let name = std::path::Path::new(program)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| program.clone());
                    vec![name]
                })
                .unwrap_or_default(),
        }
    }
}

/// Masks the secrets in a command line (the rules are in the module's documentation).
pub fn redact_command(argv: &[String]) -> Vec<String> {
    let mut value_follows = false;
    argv.iter()
        .map(|arg| {
            // `--password` ended the previous argument: this whole argument is its value.
            if std::mem::take(&mut value_follows) && !arg.starts_with('-') {
                return MASK.to_owned();
            }
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            while !rest.is_empty() {
                let word_at = rest.len() - rest.trim_start().len();
                out.push_str(&rest[..word_at]);
                rest = &rest[word_at..];
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                if end > 0 {
                    out.push_str(&redact_word(&rest[..end], &mut value_follows));
                }
                rest = &rest[end..];
            }
            out
        })
        .collect()
}

/// One word; `value_follows` carries "the previous word was `--password`" to the next one.
fn redact_word(word: &str, value_follows: &mut bool) -> String {
    // Quotes around a word of a `sh -c` line are kept, and looked through.
    let quote_len = word.len() - word.trim_start_matches(['\'', '"']).len();
    let (quotes, bare) = word.split_at(quote_len);
    if std::mem::take(value_follows) && !bare.starts_with('-') {
        return format!("{quotes}{MASK}");
    }
    if let Some(option) = bare.strip_prefix("--") {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option, None),
        };
        if secret_name(name) {
            return match value {
                Some(_) => format!("{quotes}--{name}={MASK}"),
                None => {
                    *value_follows = true;
                    word.to_owned()
                }
            };
        }
    } else if let Some(value) = bare.strip_prefix("-p") {
        if !value.is_empty() {
            return format!("{quotes}-p{MASK}");
        }
    } else if let Some((name, _)) = bare.split_once('=') {
        let is_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_name && secret_name(name) {
            return format!("{quotes}{name}={MASK}");
        }
    }
    mask_url_password(word)
}

/// Whether an option or variable name says its value is a secret.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    const HARMLESS_SUFFIXES: [&str; 5] = ["_file", "_path", "_fd", "_command", "_cmd"];
    if name.starts_with("no_") || HARMLESS_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        return false;
    }
    const SECRET_PARTS: [&str; 7] = [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "api_key",
    ];
    SECRET_PARTS.iter().any(|p| name.contains(p)) || name == "key" || name.ends_with("_key")
}

/// `scheme://user:password@host…` → `scheme://user:***@host…`, for every URL in the word.
fn mask_url_password(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@').and_then(|a| {
            let userinfo = &authority[..a];
            userinfo.find(':').map(|c| (c, a))
        }) {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn table() {
        // (argv as given, argv recorded)
        let table = [
            ("mysqldump -uroot -pS3cret db", "mysqldump -uroot -p*** db"),
            // mysql: a bare -p prompts; the next word is the database, not a password.
            ("mysql -p S3cret", "mysql -p S3cret"),
            ("mkdir -p /srv/backup", "mkdir -p /srv/backup"),
            ("tool --password=x", "tool --password=***"),
            ("tool --password x", "tool --password ***"),
            ("tool --password --verbose", "tool --password --verbose"),
            ("tool --token=x", "tool --token=***"),
            ("tool --token x", "tool --token ***"),
            (
                "tool --api-key=x --db-password x",
                "tool --api-key=*** --db-password ***",
            ),
            (
                "restic --password-file /etc/pw",
                "restic --password-file /etc/pw",
            ),
            ("pg_dump --no-password db", "pg_dump --no-password db"),
            (
                "env AWS_SECRET_ACCESS_KEY=x aws s3 ls",
                "env AWS_SECRET_ACCESS_KEY=*** aws s3 ls",
            ),
            (
                "env AWS_ACCESS_KEY_ID=AKIA1 aws",
                "env AWS_ACCESS_KEY_ID=AKIA1 aws",
            ),
            ("env API_KEY=x run", "env API_KEY=*** run"),
            ("env PGPASSWORD=x pg_dump", "env PGPASSWORD=*** pg_dump"),
            ("env GITHUB_TOKEN=x gh", "env GITHUB_TOKEN=*** gh"),
            (
                "env PASSWORD_FILE=/run/pw app",
                "env PASSWORD_FILE=/run/pw app",
            ),
            ("env LANG=C sort", "env LANG=C sort"),
            (
                "curl https://user:pass@host/path?q=1",
                "curl https://user:***@host/path?q=1",
            ),
            (
                "rclone --url=sftp://u:p@h:22/x",
                "rclone --url=sftp://u:***@h:22/x",
            ),
            (
                "git clone ssh://git@host/repo",
                "git clone ssh://git@host/repo",
            ),
            ("curl https://host/a@b", "curl https://host/a@b"),
            ("echo --", "echo --"),
        ];
        for (given, recorded) in table {
            assert_eq!(redact_command(&words(given)), words(recorded), "{given:?}");
        }
    }

    #[test]
    fn inside_a_shell_command_line_and_across_arguments() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "PGPASSWORD=x pg_dump db |  gzip; mysqldump '-pS3cret' --password \"x\"",
            "sh",
            "--token",
            "abc def",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            redact_command(&argv),
            [
                "sh",
                "-c",
                "PGPASSWORD=*** pg_dump db |  gzip; mysqldump '-p*** --password \"***",
                "sh",
                "--token",
                "***",
            ]
        );
    }

    #[test]
    fn modes() {
        let argv: Vec<String> = ["/usr/bin/mysqldump", "-pS3cret", "db"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(RecordCommand::Full.apply(&argv), argv);
        assert_eq!(
            RecordCommand::Redacted.apply(&argv),
            ["/usr/bin/mysqldump", "-p***", "db"]
        );
        assert_eq!(RecordCommand::NameOnly.apply(&argv), ["mysqldump"]);
        assert!(RecordCommand::NameOnly.apply(&[]).is_empty());
        assert_eq!(RecordCommand::default(), RecordCommand::Redacted);
    }
}
