//! SIGINT and SIGTERM during a local run. The first stops the run: the execution is stopped,
//! the release recorded `interrupted`, its lock kept for `baton resume`. A second one aborts at
//! once, as a crash would (the journal still resumes it).

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use tokio::sync::mpsc;

pub struct Interrupts {
    first: mpsc::UnboundedReceiver<i32>,
    handle: Handle,
}

impl Interrupts {
    pub fn listen() -> std::io::Result<Interrupts> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let (tx, first) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            let mut seen = false;
            for signal in signals.forever() {
                if seen {
                    std::process::exit(crate::exit::signalled(signal).into());
                }
                seen = true;
                let _ = tx.send(signal);
            }
        });
        Ok(Interrupts { first, handle })
    }

    /// The first signal, when it comes.
    pub async fn first(&mut self) -> i32 {
        match self.first.recv().await {
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
