//! The console notifier: one line per notification on a writer (stderr in the CLI).

use super::console_line;
use async_trait::async_trait;
use baton_domain::ports::{Notification, Notifier, ProviderError};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Writes each notification as one line. Clones share the writer, so lines never interleave.
#[derive(Clone)]
pub struct ConsoleNotifier {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl ConsoleNotifier {
    pub fn new(out: Box<dyn Write + Send>) -> ConsoleNotifier {
        ConsoleNotifier { out: Arc::new(Mutex::new(out)) }
    }
}

#[async_trait]
impl Notifier for ConsoleNotifier {
    fn name(&self) -> &str {
        "console"
    }

    async fn notify(
        &self,
        notification: &Notification,
        _state: Option<&serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, ProviderError> {
        let line = console_line(notification);
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| ProviderError::unavailable("cannot write the console notification").caused_by(e))?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::tests::notification;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn writes_one_line_per_notification() {
        let shared = Shared::default();
        let console = ConsoleNotifier::new(Box::new(shared.clone()));
        assert_eq!(console.name(), "console");
        let mut second = notification();
        second.headline = "Released".into();

        assert_eq!(console.notify(&notification(), None).await.unwrap(), None);
        assert_eq!(console.clone().notify(&second, None).await.unwrap(), None);

        let written = String::from_utf8(shared.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<_> = written.lines().collect();
        assert_eq!(lines.len(), 2, "{written}");
        assert_eq!(lines[0], console_line(&notification()));
        assert!(lines[1].contains("web [production]: Released | running"), "{}", lines[1]);
    }

    #[tokio::test]
    async fn a_broken_writer_is_unavailable() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let result = ConsoleNotifier::new(Box::new(Closed)).notify(&notification(), None).await;
        assert!(matches!(result, Err(ProviderError::Unavailable { message: m, .. }) if m.contains("console notification")));
    }
}
