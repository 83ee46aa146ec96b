//! SIGINT and SIGTERM during a local run. The first is a person's stop: the release rolls back
//! what it touched and closes `cancelled`. The second stops that too and leaves the release
//! `interrupted`, holding its lock, for `baton resume`. A third aborts at once, as a crash would
//! (the journal still resumes it).

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use tokio::sync::mpsc;

pub struct Interrupts {
    received: mpsc::UnboundedReceiver<i32>,
    handle: Handle,
}

/// The signals a run answers before the next one aborts the process.
const ANSWERED: usize = 2;

impl Interrupts {
    pub fn listen() -> std::io::Result<Interrupts> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let (tx, received) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for (seen, signal) in signals.forever().enumerate() {
                if seen >= ANSWERED {
                    std::process::exit(crate::exit::signalled(signal).into());
                }
                let _ = tx.send(signal);
            }
        });
        Ok(Interrupts { received, handle })
    }

    /// The next signal, when it comes.
    pub async fn next(&mut self) -> i32 {
        match self.received.recv().await {
            Some(signal) => signal,
            None => std::future::pending().await,
        }
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.handle.close();
    }
}

pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Whether a run ended with `code` because a person stopped it with a signal (130 or 143).
pub fn stopped_by_one(code: std::process::ExitCode) -> bool {
    [SIGINT, SIGTERM].iter().any(|&signal| code == crate::exit::code(crate::exit::signalled(signal)))
}
