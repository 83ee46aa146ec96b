//! Trying an operation again after a pause that grows: the one loop behind a conflicting write
//! read again, an export sent again after an outage, a notification sent again within its
//! stage's budget. (The ASL executor's `Retry` is the language's own semantics, not this.)

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How many attempts, and how long to pause before each after the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The pause before the second attempt.
    pub first: Duration,
    /// Each further pause is this many times the one before, up to `cap`.
    pub factor: u32,
    pub cap: Duration,
    /// Each pause is drawn at random between zero and its computed length ("full jitter"), so
    /// callers that collided once do not collide again in step.
    pub jitter: bool,
    /// No attempt starts at or past this instant: a pause that would reach it ends the retries.
    pub deadline: Option<Instant>,
}

impl Backoff {
    /// The same pause before every retry, as many attempts as the deadline allows.
    pub const fn fixed(pause: Duration) -> Backoff {
        Backoff { attempts: u32::MAX, first: pause, factor: 1, cap: pause, jitter: false, deadline: None }
    }

    /// Pauses that double from `first`, at most `cap`, as many attempts as the deadline allows.
    pub const fn doubling(first: Duration, cap: Duration) -> Backoff {
        Backoff { attempts: u32::MAX, first, factor: 2, cap, jitter: false, deadline: None }
    }

    pub const fn attempts(self, attempts: u32) -> Backoff {
        Backoff { attempts, ..self }
    }

    pub const fn jittered(self) -> Backoff {
        Backoff { jitter: true, ..self }
    }

    pub const fn until(self, deadline: Instant) -> Backoff {
        Backoff { deadline: Some(deadline), ..self }
    }

    /// The (longest) pause after attempt `attempt` (counted from 1) failed.
    pub fn pause_after(&self, attempt: u32) -> Duration {
        self.first.saturating_mul(self.factor.saturating_pow(attempt.saturating_sub(1))).min(self.cap)
    }
}

/// Runs `attempt` (given its number, from 1) until it succeeds, fails with an error `retryable`
/// refuses, or `backoff`'s attempts or deadline are spent; answers the last attempt's result.
/// `retryable` is asked only when another attempt is possible, so it may log the retry it allows.
///
/// (`attempt` returns a future rather than being an async closure: the futures of async closures
/// cannot be proven `Send`, and the handlers' must be.)
pub async fn retry<T, E, Fut>(backoff: Backoff, mut attempt: impl FnMut(u32) -> Fut, mut retryable: impl FnMut(&E) -> bool) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut number = 1;
    loop {
        let error = match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let pause = backoff.pause_after(number);
        let out_of_time = backoff.deadline.is_some_and(|deadline| Instant::now() + pause >= deadline);
        if number >= backoff.attempts || out_of_time || !retryable(&error) {
            return Err(error);
        }
        tokio::time::sleep(if backoff.jitter { pause.mul_f64(rand::random::<f64>()) } else { pause }).await;
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pauses_grow_by_their_factor_up_to_the_cap() {
        let cases = [
            ("fixed", Backoff::fixed(MS * 250), vec![250, 250, 250, 250]),
            ("doubling", Backoff::doubling(MS * 10, MS * 400), vec![10, 20, 40, 80, 160, 320, 400, 400]),
            ("uncapped", Backoff::doubling(MS * 200, Duration::MAX), vec![200, 400, 800, 1600]),
        ];
        for (case, backoff, expected) in cases {
            let pauses: Vec<u128> = (1..=expected.len() as u32).map(|attempt| backoff.pause_after(attempt).as_millis()).collect();
            assert_eq!(pauses, expected, "{case}");
        }
        let late = Backoff::doubling(MS, Duration::from_secs(60)).pause_after(1000);
        assert_eq!(late, Duration::from_secs(60), "no overflow after many attempts");
    }

    /// One attempt's result: `Err(true)` is retryable.
    type Attempt = Result<u32, bool>;

    /// Runs `retry` over `results` (one per attempt); answers the attempts made and the final result.
    async fn run(backoff: Backoff, results: &[Attempt]) -> (u32, Attempt) {
        let mut made = 0;
        let result = retry(
            backoff,
            |number| {
                made = number;
                let answer = results[number as usize - 1];
                async move { answer }
            },
            |retryable| *retryable,
        )
        .await;
        (made, result)
    }

    #[tokio::test]
    async fn retries_what_is_retryable_while_attempts_remain() {
        let quick = Backoff::fixed(MS).attempts(3);
        let cases: [(&str, &[Attempt], (u32, Attempt)); 5] = [
            ("first succeeds", &[Ok(1)], (1, Ok(1))),
            ("succeeds on a retry", &[Err(true), Err(true), Ok(3)], (3, Ok(3))),
            ("attempts spent", &[Err(true), Err(true), Err(true)], (3, Err(true))),
            ("not retryable", &[Err(true), Err(false), Ok(3)], (2, Err(false))),
            ("refused at once", &[Err(false)], (1, Err(false))),
        ];
        for (case, results, expected) in cases {
            assert_eq!(run(quick, results).await, expected, "{case}");
            assert_eq!(run(quick.jittered(), results).await, expected, "{case}, jittered");
        }
    }

    #[tokio::test]
    async fn no_attempt_starts_after_the_deadline() {
        let failing = [Err(true); 3];
        let started = Instant::now();
        let (made, result) = run(Backoff::fixed(Duration::from_secs(60)).until(started + Duration::from_secs(30)), &failing).await;
        assert_eq!((made, result), (1, Err(true)), "a pause past the deadline is not waited for");
        assert!(started.elapsed() < Duration::from_secs(5));

        let (made, _) = run(Backoff::fixed(MS).attempts(3).until(started + Duration::from_secs(3600)), &failing).await;
        assert_eq!(made, 3, "a far deadline leaves the attempts to the count");
    }

    #[tokio::test]
    async fn retryable_is_asked_only_when_another_attempt_would_be_made() {
        let mut asked = 0;
        let result: Result<(), ()> = retry(
            Backoff::fixed(MS).attempts(2),
            |_| async { Err(()) },
            |_| {
                asked += 1;
                true
            },
        )
        .await;
        assert_eq!((result, asked), (Err(()), 1));
    }
}
