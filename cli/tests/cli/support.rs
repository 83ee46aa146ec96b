//! What the CLI's tests share: the bundled example catalog and a `baton` command pointed at a
//! catalog and a state directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// examples/catalog: hello-web, flaky-api and hello-api.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/catalog")
}

/// `baton <args> --catalog <catalog> --state-dir <state>`, not yet run.
pub fn baton_command(state: &Path, catalog: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_baton"));
    command.args(args).arg("--catalog").arg(catalog).arg("--state-dir").arg(state);
    command
}

/// A spawned process (a served dashboard), stopped when dropped: a failed assertion included.
pub struct Served(pub Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
