//! `baton catalog validate`'s check of what a `command` block's script reads from the
//! environment: commands no longer inherit Baton's, so a script reading a variable its block's
//! `pass-env` does not list runs without it. Only scripts Baton can read are checked: an inline
//! `sh -c '...'`, a shell running a script file, or a program that is a shell script.

use baton_domain::catalog::{ProviderBlock, ServiceEntry};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A script reading variables its command does not get.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unlisted {
    pub file: String,
    /// The block, as a catalog path (`extensions.baton.build`).
    pub path: String,
    /// The script: `sh -c` text, or its file.
    pub script: String,
    pub variables: Vec<String>,
}

impl std::fmt::Display for Unlisted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: warning: {} reads {}, which pass-env does not list: the command does not get {} (commands get only \
             PATH, HOME, USER, LOGNAME, SHELL, TMPDIR, TERM, TZ, the locale, BATON_* and what env and pass-env name)",
            self.file,
            self.path,
            self.script,
            self.variables.join(", "),
            if self.variables.len() == 1 { "it" } else { "them" }
        )
    }
}

/// Scripts larger than this are not read: a script is a few kilobytes.
const MAX_SCRIPT: u64 = 256 * 1024;

/// Every `command` block of `entry` whose script reads a variable its command does not get.
pub fn unlisted(entry: &ServiceEntry) -> Vec<Unlisted> {
    let delivery = &entry.delivery;
    let mut blocks: Vec<(String, &ProviderBlock)> =
        vec![("extensions.baton.build".into(), &delivery.build), ("extensions.baton.deploy".into(), &delivery.deploy.target)];
    for (i, gate) in delivery.health.gates.iter().enumerate() {
        blocks.push((format!("extensions.baton.health.gates[{i}]"), &gate.gate));
    }
    let catalog_dir = Path::new(&entry.source).parent().unwrap_or(Path::new("."));
    let mut found = Vec::new();
    for (path, block) in blocks.into_iter().filter(|(_, block)| block.provider == "command") {
        let names = |field: &str| -> BTreeSet<String> {
            match block.settings.get(field) {
                Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                Some(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
                _ => BTreeSet::new(),
            }
        };
        let given: BTreeSet<String> = names("pass-env").into_iter().chain(names("env")).collect();
        let work_dir = match block.settings.get("working-dir").and_then(|d| d.as_str()) {
            Some(dir) => catalog_dir.join(dir),
            None => catalog_dir.to_owned(),
        };
        for field in ["command", "rollback-command"] {
            let argv: Vec<String> = names_in_order(block.settings.get(field));
            let Some((script, text)) = script_of(&argv, &work_dir) else { continue };
            let variables: Vec<String> = read_variables(&text).into_iter().filter(|name| !gets(name, &given)).collect();
            if !variables.is_empty() {
                found.push(Unlisted { file: entry.source.clone(), path: path.clone(), script, variables });
            }
        }
    }
    found
}

fn names_in_order(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Whether a command gets `name`: the base environment, Baton's own variables, what its block
/// names, and what a shell sets itself.
fn gets(name: &str, given: &BTreeSet<String>) -> bool {
    const SHELL_SETS: &[&str] = &["PWD", "OLDPWD", "IFS", "PPID", "RANDOM", "LINENO", "SECONDS", "OPTARG", "OPTIND", "PS1", "PS2", "PS4"];
    baton_providers::BASE_ENV.contains(&name)
        || name.starts_with("LC_")
        || name.starts_with("BATON_")
        || name.starts_with("BASH")
        || SHELL_SETS.contains(&name)
        || given.contains(name)
}

const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "ash"];

/// The script an argv runs, named for the message, and its text: `sh -c TEXT`, `sh FILE`, or a
/// program file starting with a shell's `#!`.
fn script_of(argv: &[String], work_dir: &Path) -> Option<(String, String)> {
    let program = argv.first()?;
    let shell = SHELLS.contains(&program.rsplit('/').next().unwrap_or(program));
    if shell {
        let mut args = argv[1..].iter().skip_while(|arg| arg.starts_with('-') && *arg != "-c");
        return match args.next()?.as_str() {
            "-c" => Some((format!("`{program} -c` text"), args.next()?.clone())),
            file => Some((file.to_owned(), read_script(&work_dir.join(file))?)),
        };
    }
    let file: PathBuf = if program.contains('/') { work_dir.join(program) } else { return None };
    let text = read_script(&file)?;
    let interpreter = text.lines().next()?.strip_prefix("#!")?;
    let is_shell = interpreter.split_whitespace().any(|word| SHELLS.contains(&word.rsplit('/').next().unwrap_or(word)));
    is_shell.then(|| (program.clone(), text))
}

fn read_script(file: &Path) -> Option<String> {
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.len() > MAX_SCRIPT {
        return None;
    }
    std::fs::read_to_string(file).ok()
}

/// The environment-style names (upper case) a shell script reads (`$NAME`, `${NAME...}`) and
/// does not set itself (`NAME=`, `export NAME=`, `read NAME`, `for NAME in`), nor reads with a
/// default (`${NAME:-...}`, `${NAME-...}`): a script that supplies one expects it unset.
pub fn read_variables(script: &str) -> BTreeSet<String> {
    let code: String = script.lines().map(|line| if line.trim_start().starts_with('#') { "" } else { line }).collect::<Vec<_>>().join("\n");
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut read = BTreeSet::new();
    let mut set = BTreeSet::new();
    let chars: Vec<char> = code.chars().collect();
    let name_at = |start: usize| -> String { chars[start..].iter().take_while(|c| is_name_char(**c)).collect() };
    for (i, c) in chars.iter().enumerate() {
        match c {
            '$' => {
                let braced = chars.get(i + 1) == Some(&'{');
                let name = name_at(i + 1 + usize::from(braced));
                let after = chars.get(i + 1 + usize::from(braced) + name.len()).copied();
                let defaulted = braced && matches!(after, Some(':' | '-' | '=' | '+'));
                if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()) && !defaulted {
                    read.insert(name);
                }
            }
            // An assignment: a name at the start of a word, then `=`.
            c if is_name_char(*c) && (i == 0 || !is_name_char(chars[i - 1]) && chars[i - 1] != '$' && chars[i - 1] != '{') => {
                let name = name_at(i);
                if chars.get(i + name.len()) == Some(&'=') {
                    set.insert(name);
                }
            }
            _ => {}
        }
    }
    // `read NAME...` and `for NAME in`.
    for line in code.lines() {
        let words: Vec<&str> = line.split(|c: char| c.is_whitespace() || c == ';').filter(|w| !w.is_empty()).collect();
        for (i, word) in words.iter().enumerate() {
            match *word {
                "read" => set.extend(words[i + 1..].iter().filter(|w| !w.starts_with('-')).map(|w| (*w).to_owned())),
                "for" => set.extend(words.get(i + 1).map(|w| (*w).to_owned())),
                _ => {}
            }
        }
    }
    read.into_iter().filter(|name| !set.contains(name) && !name.chars().any(|c| c.is_ascii_lowercase())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_a_script_reads_are_those_it_neither_sets_nor_defaults() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("a plain read", "curl -H \"Authorization: $DEPLOY_TOKEN\" $URL_BASE/x", &["DEPLOY_TOKEN", "URL_BASE"]),
            ("braced", "echo ${REGISTRY}/${IMAGE_NAME}:tag", &["IMAGE_NAME", "REGISTRY"]),
            ("set before", "REGION=us-east-1\necho $REGION", &[]),
            ("exported", "export TARGET_ENV=prod; echo $TARGET_ENV", &[]),
            ("with a default", "echo ${LOG_LEVEL:-info} ${MODE-fast}", &[]),
            ("read and for", "read -r ANSWER; for HOST in a b; do echo $HOST $ANSWER; done", &[]),
            ("positional and lower case", "echo $1 $@ $name ${file}", &[]),
            ("a comment", "# uses $NOT_READ\necho ok", &[]),
        ];
        for (name, script, want) in cases {
            let got: Vec<String> = read_variables(script).into_iter().collect();
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn a_command_gets_the_base_environment_batons_own_and_what_its_block_names() {
        let given: BTreeSet<String> = ["DEPLOY_TOKEN".to_owned()].into();
        for name in ["PATH", "HOME", "LC_TIME", "BATON_TARGET", "DEPLOY_TOKEN", "PWD"] {
            assert!(gets(name, &given), "{name}");
        }
        assert!(!gets("AWS_PROFILE", &given));
    }

    #[test]
    fn the_script_is_the_shells_text_or_file_or_a_shell_script_program() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("deploy.sh"), "#!/bin/sh\necho $X\n").unwrap();
        std::fs::write(dir.path().join("tool"), "\x7fELF binary").unwrap();
        let argv = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        let text = |words: &[&str]| script_of(&argv(words), dir.path()).map(|(_, text)| text);
        assert_eq!(text(&["sh", "-c", "echo $A"]).as_deref(), Some("echo $A"));
        assert_eq!(text(&["bash", "-eu", "-c", "echo $A"]).as_deref(), Some("echo $A"));
        assert_eq!(text(&["sh", "deploy.sh"]).as_deref(), Some("#!/bin/sh\necho $X\n"));
        assert_eq!(text(&["./deploy.sh"]).as_deref(), Some("#!/bin/sh\necho $X\n"));
        assert_eq!(text(&["./tool"]), None, "not a shell script");
        assert_eq!(text(&["python3", "x.py"]), None, "not a script Baton reads");
    }
}
