//! Task tokens (`.waitForTaskToken`): the executor's table of tasks waiting for an answer, and the
//! API that answers them.
use super::{Executor, Inner, TaskFailure};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{Notify, oneshot};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskTokenError {
    #[error("Task does not exist anymore: no execution is waiting for this task token")]
    TaskDoesNotExist,
}

pub(crate) type TokenReply = Result<Value, TaskFailure>;

pub(crate) struct TokenSlot {
    pub(crate) reply: oneshot::Sender<TokenReply>,
    pub(crate) heartbeat: Arc<Notify>,
}

/// Removes the token from the executor's table however the task ends (answer, timeout, abort).
pub(crate) struct TokenGuard<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) token: String,
}

impl Drop for TokenGuard<'_> {
    fn drop(&mut self) {
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.token);
    }
}

/// See [`Executor::downgrade`].
#[derive(Clone)]
pub struct WeakExecutor(std::sync::Weak<Inner>);

impl WeakExecutor {
    /// The executor, while it lives.
    pub fn upgrade(&self) -> Option<Executor> {
        self.0.upgrade().map(|inner| Executor { inner })
    }
}

impl Executor {
    fn take_token(&self, token: &str) -> Result<TokenSlot, TaskTokenError> {
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).remove(token).ok_or(TaskTokenError::TaskDoesNotExist)
    }

    pub fn send_task_success(&self, token: &str, output: Value) -> Result<(), TaskTokenError> {
        self.take_token(token)?.reply.send(Ok(output)).map_err(|_| TaskTokenError::TaskDoesNotExist)
    }

    pub fn send_task_failure(&self, token: &str, error: &str, cause: Option<&str>) -> Result<(), TaskTokenError> {
        let failure = TaskFailure { error: error.to_owned(), cause: cause.map(str::to_owned) };
        self.take_token(token)?.reply.send(Err(failure)).map_err(|_| TaskTokenError::TaskDoesNotExist)
    }

    /// Whether a task still waits for `token` (not answered, timed out or aborted yet).
    pub fn is_waiting(&self, token: &str) -> bool {
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner()).contains_key(token)
    }

    /// A handle that does not keep the executor alive: for the embedder's task invoker, which the
    /// executor itself holds, to answer tokens without a reference cycle.
    pub fn downgrade(&self) -> WeakExecutor {
        WeakExecutor(Arc::downgrade(&self.inner))
    }

    pub fn send_task_heartbeat(&self, token: &str) -> Result<(), TaskTokenError> {
        let tokens = self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let slot = tokens.get(token).ok_or(TaskTokenError::TaskDoesNotExist)?;
        slot.heartbeat.notify_one();
        Ok(())
    }
}
