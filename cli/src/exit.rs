//! Exit codes that mean something to scripts, all of them here: what each means, what `baton
//! --help` lists, and the code a release's final status exits with.
use baton_domain::release::ReleaseStatus;
use std::process::ExitCode;

pub const OK: u8 = 0;
/// The work ran and failed: a release failed or rolled back, validation found errors.
pub const FAILED: u8 = 1;
/// Bad usage, unreadable files, invalid configuration.
pub const USAGE: u8 = 2;
/// A release failed and so did its rollback: the service may run a mix of versions, and a
/// person must act.
pub const ROLLBACK_FAILED: u8 = 3;
/// The release never ran: a newer signal for the service and environment ran instead. Not a
/// success (this commit did not ship) nor a failure (the newer one carries the change on).
pub const SUPERSEDED: u8 = 4;
/// A person stopped the release (`baton cancel`, Ctrl-C) and what it deployed was rolled back:
/// this commit did not ship, and nothing failed.
pub const CANCELLED: u8 = 5;
/// A scheduled release fired inside a freeze window and was closed before it ran: like a
/// superseded one, this commit did not ship and nothing failed; the freeze said no.
pub const SKIPPED: u8 = 6;

/// Stopped by a signal (SIGINT: 130, SIGTERM: 143, as shells report a process it killed): a
/// person's stop, after which the release was rolled back and closed `cancelled` (or, on a
/// second signal, left `interrupted` for `baton resume`).
pub fn signalled(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

/// The exit codes as `baton --help` lists them, from the constants above.
pub const HELP: &str = "Exit codes:
  0    success (or nothing to do: a release of that commit already ran)
  1    the work ran and failed: a release failed or rolled back, validation found errors
  2    bad usage, unreadable files, invalid configuration
  3    a release failed and so did its rollback: a person must act
  4    superseded: a newer signal for the service ran instead (this commit did not ship)
  5    cancelled: a person stopped the release and what it deployed was rolled back
  6    skipped: a scheduled release fired inside a freeze window and never ran
  130  stopped by SIGINT (Ctrl-C); 143 stopped by SIGTERM: the release rolled back and ended cancelled
       (a second signal leaves it interrupted for `baton resume`)";

pub fn code(value: u8) -> ExitCode {
    ExitCode::from(value)
}

/// The exit code of a release that ended with `status`.
pub fn for_release(status: Option<ReleaseStatus>) -> ExitCode {
    code(status.map_or(FAILED, value_for))
}

/// The exit code's value for a release that ended with `status` (`baton status` reads it from
/// the execution's outcome).
pub fn value_for(status: ReleaseStatus) -> u8 {
    match status {
        ReleaseStatus::Succeeded => OK,
        ReleaseStatus::Superseded => SUPERSEDED,
        ReleaseStatus::Skipped => SKIPPED,
        ReleaseStatus::RollbackFailed => ROLLBACK_FAILED,
        ReleaseStatus::Cancelled => CANCELLED,
        _ => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_lists_every_exit_code() {
        for code in [OK, FAILED, USAGE, ROLLBACK_FAILED, SUPERSEDED, CANCELLED, SKIPPED, signalled(2), signalled(15)] {
            assert!(
                HELP.lines().any(|line| line.trim_start().starts_with(&code.to_string()) || line.contains(&format!(" {code} "))),
                "{code}"
            );
        }
    }
}
