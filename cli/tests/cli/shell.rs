//! `baton completions` and `baton man` from the built binary: the scripts parse in the shells
//! installed here, and the man page renders with groff without warnings.

use std::process::{Command, Output, Stdio};

fn baton(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_baton")).args(args).output().expect("run baton");
    assert!(output.status.success(), "baton {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

fn installed(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs `shell check_flags script` on the generated script; bash is on every machine the
/// suite runs on, so its check never skips.
fn syntax_check(shell: &str, check_flags: &[&str], script: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("baton-completion");
    std::fs::write(&file, script).unwrap();
    let output = Command::new(shell).args(check_flags).arg(&file).output().expect("run the shell");
    assert!(output.status.success(), "{shell} rejects the script: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn help_shows_a_commands_help_and_its_own() {
    let text = |args: &[&str]| String::from_utf8_lossy(&baton(args).stdout).into_owned();
    assert!(text(&["help"]).contains("Exit codes:"), "baton help is baton --help");
    assert_eq!(text(&["help", "catalog", "validate"]), text(&["catalog", "validate", "-h"]));
    assert!(text(&["help", "--help"]).contains("Print the help of baton or of a command"), "baton help --help works");
    let unknown = Command::new(env!("CARGO_BIN_EXE_baton")).args(["help", "relase"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn completions_for_every_shell_name_every_command_and_parse_where_the_shell_is_installed() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = baton(&["completions", shell]).stdout;
        let text = String::from_utf8_lossy(&script);
        for command in ["release", "history", "dashboard", "cancel", "completions"] {
            assert!(text.contains(command), "{shell}'s completions lack `{command}`");
        }
        match shell {
            "bash" => syntax_check("bash", &["-n"], &script),
            "zsh" | "fish" if installed(shell) => syntax_check(shell, &["-n"], &script),
            _ => {}
        }
    }
    assert!(installed("bash"), "bash is needed to check the bash completions");
}

#[test]
fn the_man_page_renders_and_one_page_per_command_is_written() {
    let page = baton(&["man"]).stdout;
    let rendered = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut groff| {
            use std::io::Write as _;
            groff.stdin.take().unwrap().write_all(&page)?;
            groff.wait_with_output()
        })
        .expect("groff is installed (Debian's groff-base, which man needs)");
    assert!(rendered.status.success() && rendered.stderr.is_empty(), "groff: {}", String::from_utf8_lossy(&rendered.stderr));
    assert!(String::from_utf8_lossy(&page).contains("Exit codes"), "the page lists the exit codes");

    let dir = tempfile::tempdir().unwrap();
    baton(&["man", "--out", dir.path().to_str().unwrap()]);
    for page in ["baton.1", "baton-release.1", "baton-dashboards-datadog.1"] {
        assert!(dir.path().join(page).is_file(), "{page} written");
    }
}
