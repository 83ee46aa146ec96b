//! The `command` provider's catalog blocks: a build, a deploy and a health gate that run an
//! argv on the machine running Baton (so never on AWS: the cloud catalog refuses them).

use baton_domain::catalog::Seconds;
use baton_domain::catalog::shape::{Field, Kind, ProviderShape, Slot, field, required, through_model};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An argv run without a shell: what every `command` provider takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommandRun {
    pub command: Vec<String>,
    /// Relative paths are resolved against the catalog file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Variables of Baton's own environment the command gets besides the few every command gets
    /// (`PATH`, `HOME`, the locale...): credentials reach a command only when named here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Seconds>,
}

impl CommandRun {
    /// Just an argv: default directory, environment and timeout.
    pub fn new(command: Vec<String>) -> CommandRun {
        CommandRun { command, working_dir: None, env: BTreeMap::new(), pass_env: Vec::new(), timeout: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommandBuild {
    #[serde(flatten)]
    pub run: CommandRun,
    /// File the build writes the artifact reference to; otherwise its last line of stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CommandDeploy {
    #[serde(flatten)]
    pub run: CommandRun,
    /// Run instead of `command` on rollback; `command` with the previous artifact otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_command: Option<Vec<String>>,
}

const WORKING_DIR: Field =
    field("working-dir", Kind::WorkingDir, "Directory the command runs in; relative to the catalog file's directory.");
const ENV: Field = field("env", Kind::Env, "Extra environment variables (`BATON_*` are reserved).");
const PASS_ENV: Field = field(
    "pass-env",
    Kind::EnvNames,
    "Variables of Baton's environment the command also gets; otherwise it gets only PATH, HOME, USER, LOGNAME, SHELL, \
     TMPDIR, TERM, TZ and the locale (`LANG`, `LC_*`).",
);
const TIMEOUT: Field = field("timeout", Kind::Duration { min: 1, max: Kind::NO_MAX }, "Kill the command after this long.");

const BUILD_COMMAND: &[Field] = &[
    required("command", Kind::Argv, "Program and arguments, run without a shell."),
    WORKING_DIR,
    field(
        "artifact-file",
        Kind::RelativePath,
        "File the build writes the artifact reference to (relative to the working directory); \
         otherwise the last line of stdout.",
    ),
    ENV,
    PASS_ENV,
    TIMEOUT,
];

const DEPLOY_COMMAND: &[Field] = &[
    required("command", Kind::Argv, "Program and arguments, run once per target."),
    field("rollback-command", Kind::Argv, "Run instead of `command` on rollback (default: `command` with the previous artifact)."),
    WORKING_DIR,
    ENV,
    PASS_ENV,
    TIMEOUT,
];

const GATE_COMMAND: &[Field] =
    &[required("command", Kind::Argv, "Program and arguments; healthy when it exits 0."), WORKING_DIR, ENV, PASS_ENV, TIMEOUT];

pub const COMMAND_BUILD: ProviderShape = ProviderShape {
    slot: Slot::Build,
    name: "command",
    doc: "Runs a local command.",
    fields: BUILD_COMMAND,
    at_least_one: None,
    local_only: true,
    run_word: None,
    through_model: through_model::<CommandBuild>,
};

pub const COMMAND_DEPLOY: ProviderShape = ProviderShape {
    slot: Slot::Deploy,
    name: "command",
    doc: "Runs a local command per target.",
    fields: DEPLOY_COMMAND,
    at_least_one: None,
    local_only: true,
    run_word: None,
    through_model: through_model::<CommandDeploy>,
};

pub const COMMAND_GATE: ProviderShape = ProviderShape {
    slot: Slot::Gate,
    name: "command",
    doc: "A local command: healthy when it exits 0.",
    fields: GATE_COMMAND,
    at_least_one: None,
    local_only: true,
    run_word: None,
    through_model: through_model::<CommandRun>,
};
