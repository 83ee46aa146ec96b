//! What a command printed: read line by line (each line capped and scrubbed) into the log, a
//! detached run's `output.log`, and a bounded tail for error messages.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

/// Output kept for error messages: they travel in the execution state, which is small.
const TAIL_BYTES: usize = 4 * 1024;
/// Longer lines are cut so one runaway line cannot exhaust memory.
pub(super) const MAX_LINE_BYTES: usize = 8 * 1024;
/// How often the waiter reads a detached command's output files for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What the runner keeps of a command's output. Each stream keeps its own recent lines: the
/// pipes are read concurrently, so a final error on stderr may be read before stdout's
/// backlog, and one shared budget would let that backlog push it out.
#[derive(Default)]
pub(super) struct Output {
    stdout: Tail,
    stderr: Tail,
    /// Arrival order across both streams.
    lines_read: u64,
    pub(super) last_stdout_line: Option<String>,
    /// A detached run's `output.log`: every line, scrubbed.
    pub(super) log: Option<BufWriter<File>>,
}

impl Output {
    /// Keeps the tail, and every line in `log` when given (a detached run's `output.log`).
    pub(super) fn writing_to(log: Option<File>) -> Output {
        Output { log: log.map(BufWriter::new), ..Output::default() }
    }

    /// Keeps `line`, scrubbed already: before any cut of the tail can split a secret.
    pub(super) fn push(&mut self, stream: Stream, line: &str) {
        self.lines_read += 1;
        if let Some(log) = &mut self.log
            && let Err(e) = writeln!(log, "{line}")
        {
            tracing::warn!(target: "baton::command", "stopped writing the output log: {e}");
            self.log = None;
        }
        let tail = match stream {
            Stream::Stdout => {
                if !line.trim().is_empty() {
                    self.last_stdout_line = Some(line.trim().to_owned());
                }
                &mut self.stdout
            }
            Stream::Stderr => &mut self.stderr,
        };
        tail.push(self.lines_read, line.to_owned());
    }

    /// Both streams' recent lines in arrival order, at most [`TAIL_BYTES`] (cut at the front).
    pub(super) fn tail(&self) -> String {
        let mut lines: Vec<_> = self.stdout.lines.iter().chain(&self.stderr.lines).collect();
        lines.sort_by_key(|(order, _)| *order);
        let joined = lines.into_iter().map(|(_, line)| line.as_str()).collect::<Vec<_>>().join("\n");
        if joined.len() <= TAIL_BYTES {
            return joined;
        }
        let mut cut = joined.len() - TAIL_BYTES;
        while !joined.is_char_boundary(cut) {
            cut += 1;
        }
        format!("…{}", baton_domain::redact::scrub_cut(&joined[cut..], true, false))
    }
}

/// Reads one pipe, or one output file while it grows (until `growing` says the command ended),
/// line by line into the log and the shared output.
pub(super) async fn pump(
    source: impl AsyncRead + Unpin,
    stream: Stream,
    what: &str,
    pid: u32,
    output: &Mutex<Output>,
    growing: Option<&std::sync::atomic::AtomicBool>,
) {
    let mut reader = BufReader::new(source);
    let mut line = Vec::new();
    let mut consumed = 0;
    loop {
        // Read before looking at the flag: what the command wrote before it ended is read after.
        let ended = growing.is_none_or(|ended| ended.load(std::sync::atomic::Ordering::Acquire));
        let (read, complete) = match read_line_capped(&mut reader, &mut line, MAX_LINE_BYTES).await {
            Ok(read) => read,
            Err(e) => {
                tracing::debug!(target: "baton::command", command = what, pid, stream = stream.name(), "stopped reading: {e}");
                return;
            }
        };
        consumed += read;
        if !complete && !ended {
            // The end of a file the command still writes: the rest of the line comes later.
            tokio::time::sleep(FOLLOW_INTERVAL).await;
            continue;
        }
        if consumed == 0 {
            return;
        }
        let cut = consumed > line.len();
        consumed = 0;
        let text = String::from_utf8_lossy(&line);
        // Scrubbed here, whole: a line cut at its cap may end in the start of a secret.
        let text = baton_domain::redact::scrub_cut(text.trim_end_matches(['\n', '\r']), false, cut);
        tracing::info!(target: "baton::command", command = what, pid, stream = stream.name(), "{text}");
        output.lock().unwrap_or_else(PoisonError::into_inner).push(stream, &text);
        line.clear();
    }
}

/// Reads up to and including the next `\n`, keeping at most `cap` bytes of it (the rest of a
/// longer line is read and dropped), appended to `out`. Returns the bytes consumed (0 at end of
/// input) and whether the line ended (false: the input ended first).
async fn read_line_capped<R: AsyncBufRead + Unpin>(reader: &mut R, out: &mut Vec<u8>, cap: usize) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok((consumed, false));
        }
        let (chunk, complete) = match buffer.iter().position(|&b| b == b'\n') {
            Some(newline) => (&buffer[..=newline], true),
            None => (buffer, false),
        };
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let length = chunk.len();
        reader.consume(length);
        consumed += length;
        if complete {
            return Ok((consumed, true));
        }
    }
}

/// One stream's most recent lines: the fewest that cover half of [`TAIL_BYTES`].
#[derive(Default)]
struct Tail {
    /// (arrival order, line)
    lines: VecDeque<(u64, String)>,
    bytes: usize,
}

impl Tail {
    fn push(&mut self, order: u64, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back((order, line));
        while self.lines.len() > 1 && self.bytes - (self.lines[0].1.len() + 1) >= TAIL_BYTES / 2 {
            let (_, dropped) = self.lines.pop_front().expect("more than one line");
            self.bytes -= dropped.len() + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandContext;
    use crate::command::detached::{OUTPUT_LOG, STATUS_FILE};
    use crate::command::supervise::Exit;
    use crate::command::tests::{env, spec};
    use crate::test_support::{LogCapture, entry_in, release_id, script};
    use std::collections::BTreeMap;

    #[tokio::test]
    async fn output_is_logged_line_by_line_and_the_tail_is_bounded() {
        let logs = LogCapture::start();
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), dir.path()).unwrap();
        let argv = script(
            dir.path(),
            "noisy.sh",
            "i=0; while [ $i -lt 500 ]; do echo \"line $i of output\"; i=$((i+1)); done; echo oops >&2; exit 3",
        );
        let secret_env = BTreeMap::from([("API_KEY".to_string(), "value-that-must-not-be-logged".to_string())]);

        let outcome = ctx.run(&spec(&ctx, &argv, &secret_env, None), env()).await.unwrap();

        assert_eq!(outcome.exit, Exit::Code(3));
        assert!(outcome.tail.len() <= TAIL_BYTES + "…".len(), "{}", outcome.tail.len());
        assert!(outcome.tail.contains("\nline 499 of output") && outcome.tail.contains("oops"), "{}", outcome.tail);
        assert!(!outcome.tail.contains("line 3 of output"));
        let failure = outcome.failure();
        assert!(failure.starts_with("test command `") && failure.contains("exited with code 3; last output:\n"), "{failure}");
        let logs = logs.text();
        assert!(logs.contains("baton::command") && logs.contains("line 0 of output") && logs.contains("oops"), "{logs}");
        assert!(!logs.contains("value-that-must-not-be-logged"));
    }

    /// The command's output line reached first on a thread with no subscriber (a sibling test's)
    /// must not be lost to a capture afterwards: see `test_support`'s anchor.
    #[tokio::test]
    async fn output_reached_first_without_a_subscriber_is_still_captured_later() {
        let dir = tempfile::tempdir().unwrap();
        let argv = script(dir.path(), "say.sh", "echo first-reached-elsewhere");
        let run_once = |dir: std::path::PathBuf, argv: Vec<String>| {
            let ctx = CommandContext::new(&entry_in(&dir), &dir).unwrap();
            async move { ctx.run(&spec(&ctx, &argv, &BTreeMap::new(), None), env()).await.unwrap() }
        };
        let (path, args) = (dir.path().to_path_buf(), argv.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run_once(path, args))
        })
        .join()
        .unwrap();

        let logs = LogCapture::start();
        run_once(dir.path().to_path_buf(), argv).await;
        assert!(logs.text().contains("first-reached-elsewhere"), "{}", logs.text());
    }

    /// Masking happens before any cut: a tail cut through a secret, a line cut at its cap through
    /// one, and the last stdout line `status.json` keeps leak no piece of it.
    #[tokio::test]
    async fn a_secret_cut_by_the_tail_or_a_line_cap_leaks_no_piece() {
        const SECRET: &str = "cut-through-secret-4e2b9d";
        baton_domain::redact::remember(SECRET);
        let dir = tempfile::tempdir().unwrap();
        let ctx = CommandContext::new(&entry_in(dir.path()), &dir.path().join("ws")).unwrap();
        // Unmasked, the tail's last TAIL_BYTES would start nine bytes into the secret on the second
        // line; the first line, cut at its cap, ends ten bytes into it.
        let after = TAIL_BYTES - (SECRET.len() - 10) - 1;
        let capped = MAX_LINE_BYTES - 10;
        let body = format!(
            "head -c {capped} /dev/zero | tr '\\0' c; echo {SECRET}; printf '%s' {SECRET}; head -c {after} /dev/zero | tr '\\0' t; echo"
        );
        let argv = script(dir.path(), "cut.sh", &body);
        let run = ctx.start(&spec(&ctx, &argv, &BTreeMap::new(), None), env(), &release_id()).await.unwrap();
        let outcome = loop {
            if let Some(outcome) = run.outcome().await.unwrap() {
                break outcome;
            }
        };
        let status = std::fs::read_to_string(run.dir.join(STATUS_FILE)).unwrap();
        let log = std::fs::read_to_string(run.dir.join(OUTPUT_LOG)).unwrap();
        assert!(outcome.tail.contains("***tttt"), "the line cut by the tail is there, masked: {}", &outcome.tail[..40]);
        for (place, text) in [("tail", &outcome.tail), ("status.json", &status), ("output.log", &log)] {
            for piece in [&SECRET[..10], &SECRET[10..], &SECRET[SECRET.len() - 8..]] {
                assert!(!text.contains(piece), "{piece} of the secret leaked into {place}");
            }
        }
        assert!(log.lines().next().is_some_and(|line| line.ends_with("c***")), "the capped line is masked where it was cut");
        assert!(outcome.last_stdout_line.as_deref().is_some_and(|line| line.starts_with("***t")), "{:?}", outcome.last_stdout_line);
    }

    #[tokio::test]
    async fn long_lines_are_cut() {
        let mut input: &[u8] = b"abcdefghij\nxy";
        let mut reader = BufReader::with_capacity(4, &mut input);
        let mut line = Vec::new();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), (11, true));
        assert_eq!(line, b"abcde");
        line.clear();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), (2, false));
        assert_eq!(line, b"xy");
        line.clear();
        assert_eq!(read_line_capped(&mut reader, &mut line, 5).await.unwrap(), (0, false));
    }

    #[test]
    fn the_tail_keeps_recent_lines_of_both_streams_in_order() {
        let mut output = Output::default();
        output.push(Stream::Stderr, "error: the one line that matters");
        for i in 0..1000 {
            output.push(Stream::Stdout, &format!("progress {i}"));
        }
        output.push(Stream::Stdout, "   ");
        let tail = output.tail();
        assert!(tail.starts_with("error: the one line that matters\nprogress "), "{tail}");
        assert!(tail.ends_with("progress 999\n   ") && !tail.contains("progress 10\n"), "{tail}");
        assert!(tail.len() <= TAIL_BYTES);
        assert_eq!(output.last_stdout_line.as_deref(), Some("progress 999"));

        output.push(Stream::Stderr, &"é".repeat(TAIL_BYTES));
        let tail = output.tail();
        assert!(tail.starts_with('…') && tail.len() <= TAIL_BYTES + "…".len() && tail.ends_with('é'));
    }
}
