//! How every command fails: one place prints the error, the causes under it and a hint, and
//! returns the exit code that says what kind of failure it was (`exit.rs`).
//!
//! ```text
//! baton: cannot read catalog examples/catalg
//!   caused by: No such file or directory (os error 2)
//!   hint: pass the catalog directory with --catalog
//! ```

use crate::exit;
use std::error::Error;
use std::fmt::Display;
use std::process::ExitCode;

/// What a command ends with: the exit code of work that ran (a failed release included: its
/// summary says why), or the failure that stopped it, which `main` reports.
pub type Outcome = Result<ExitCode, Failure>;

pub struct Failure {
    code: u8,
    message: String,
    causes: Vec<String>,
    hint: Option<String>,
}

impl Failure {
    /// Bad usage, unreadable files, invalid configuration (exit 2).
    pub fn usage(message: impl Display) -> Failure {
        Failure { code: exit::USAGE, message: message.to_string(), causes: Vec::new(), hint: None }
    }

    /// The work ran and failed (exit 1).
    pub fn failed(message: impl Display) -> Failure {
        Failure { code: exit::FAILED, ..Failure::usage(message) }
    }

    /// `error` and each of its sources, as the lines under the message.
    pub fn caused_by(mut self, error: &(dyn Error + 'static)) -> Failure {
        let mut next = Some(error);
        while let Some(error) = next {
            self.causes.push(error.to_string());
            next = error.source();
        }
        self
    }

    /// The sources of `error`, whose own text is already the message.
    pub fn sources_of(self, error: &(dyn Error + 'static)) -> Failure {
        match error.source() {
            Some(source) => self.caused_by(source),
            None => self,
        }
    }

    pub fn hint(mut self, hint: impl Display) -> Failure {
        self.hint = Some(hint.to_string());
        self
    }

    /// Prints the failure on stderr and returns its exit code: `main` does, once per command.
    pub fn report(self) -> ExitCode {
        errln!("{}", self.text());
        exit::code(self.code)
    }

    fn text(&self) -> String {
        let mut text = format!("baton: {}", self.message);
        for cause in &self.causes {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
        if let Some(hint) = &self.hint {
            text.push_str(&format!("\n  hint: {hint}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("cannot open the store")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_failure_prints_its_causes_in_order_then_the_hint() {
        let error = Outer(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"));
        let failure = Failure::usage("cannot start the local run").caused_by(&error).hint("pass --state-dir");
        assert_eq!(
            failure.text(),
            "baton: cannot start the local run\n  caused by: cannot open the store\n  caused by: permission denied\n  hint: pass --state-dir"
        );
        assert_eq!(failure.code, exit::USAGE);
        assert_eq!(Failure::failed("x").code, exit::FAILED);
    }
}
