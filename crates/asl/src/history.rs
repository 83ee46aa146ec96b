//! Execution history, shaped like Step Functions' GetExecutionHistory events.
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

macro_rules! event_types {
    ($($name:ident),* $(,)?) => {
        /// The `type` of a history event, named as AWS names it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType { $($name),* }

        impl EventType {
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$name => stringify!($name)),* }
            }
        }
    };
}

event_types!(
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionTimedOut,
    ExecutionAborted,
    PassStateEntered,
    PassStateExited,
    TaskStateEntered,
    TaskStateExited,
    ChoiceStateEntered,
    ChoiceStateExited,
    WaitStateEntered,
    WaitStateExited,
    SucceedStateEntered,
    SucceedStateExited,
    FailStateEntered,
    ParallelStateEntered,
    ParallelStateStarted,
    ParallelStateSucceeded,
    ParallelStateFailed,
    ParallelStateAborted,
    ParallelStateExited,
    MapStateEntered,
    MapStateStarted,
    MapStateSucceeded,
    MapStateFailed,
    MapStateAborted,
    MapStateExited,
    MapIterationStarted,
    MapIterationSucceeded,
    MapIterationFailed,
    MapIterationAborted,
    TaskScheduled,
    TaskStarted,
    TaskSubmitted,
    TaskSucceeded,
    TaskFailed,
    TaskTimedOut,
    LambdaFunctionScheduled,
    LambdaFunctionStarted,
    LambdaFunctionSucceeded,
    LambdaFunctionFailed,
    LambdaFunctionTimedOut,
);

impl EventType {
    /// The events that end an execution: always recorded, even in a full history.
    pub fn ends_execution(self) -> bool {
        matches!(self, Self::ExecutionSucceeded | Self::ExecutionFailed | Self::ExecutionTimedOut | Self::ExecutionAborted)
    }

    /// The field AWS puts this event's details under (`stateEnteredEventDetails`, `taskFailedEventDetails`...).
    pub fn details_field(self) -> String {
        let name = self.as_str();
        if name.ends_with("StateEntered") {
            return "stateEnteredEventDetails".into();
        }
        if name.ends_with("StateExited") {
            return "stateExitedEventDetails".into();
        }
        let mut out = String::with_capacity(name.len() + 12);
        let mut chars = name.chars();
        out.extend(chars.next().map(|c| c.to_ascii_lowercase()));
        out.extend(chars);
        out.push_str("EventDetails");
        out
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The details of an event; only the fields that event type carries are set.
/// Documents (`input`, `output`, `parameters`) are shared with the running execution rather than copied,
/// and serialize as JSON text, as AWS returns them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetails {
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_str")]
    pub name: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_json_text")]
    pub input: Option<Arc<Value>>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_json_text")]
    pub output: Option<Arc<Value>>,
    /// What only some events carry (tasks, failures, the execution's start, a Map's length), out of
    /// line: a Map over thousands of items records eight events per item, and they stay small.
    #[serde(flatten)]
    pub more: Option<Box<MoreDetails>>,
}

/// The less common details of an event (see [`EventDetails::more`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoreDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_json_text")]
    pub parameters: Option<Arc<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_in_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_in_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

impl EventDetails {
    /// Details with only less common fields set.
    pub fn more(more: MoreDetails) -> EventDetails {
        EventDetails { more: Some(Box::new(more)), ..Default::default() }
    }

    /// The details of a failure event.
    pub fn failure(error: Option<String>, cause: Option<String>) -> EventDetails {
        EventDetails::more(MoreDetails { error, cause, ..Default::default() })
    }

    pub fn error(&self) -> Option<&str> {
        self.more.as_ref()?.error.as_deref()
    }

    pub fn cause(&self) -> Option<&str> {
        self.more.as_ref()?.cause.as_deref()
    }
}

fn as_str<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    v.as_deref().serialize(s)
}

fn as_json_text<S: Serializer>(v: &Option<Arc<Value>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&serde_json::to_string(v.as_ref()).map_err(serde::ser::Error::custom)?),
        None => s.serialize_none(),
    }
}

/// One history event.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub id: u64,
    /// The event this one follows in its own branch or iteration (0 for the first).
    pub previous_event_id: u64,
    pub timestamp: DateTime<Utc>,
    pub event_type: EventType,
    pub details: Option<EventDetails>,
}

impl Serialize for HistoryEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("timestamp", &self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true))?;
        map.serialize_entry("type", &self.event_type)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("previousEventId", &self.previous_event_id)?;
        if let Some(details) = &self.details {
            map.serialize_entry(&self.event_type.details_field(), details)?;
        }
        map.end()
    }
}

/// The events of one execution, appended by every branch, with optional live subscribers.
pub(crate) struct Log {
    inner: Mutex<LogInner>,
    /// At most this many events, the last one ending the execution.
    cap: usize,
    /// Set when an event was refused: the execution must end.
    full: AtomicBool,
}

#[derive(Default)]
struct LogInner {
    events: Vec<HistoryEvent>,
    live: Option<broadcast::Sender<HistoryEvent>>,
    /// Set once the execution's events were taken (it ended): later subscribers get none.
    ended: bool,
}

/// How many events a slow subscriber may fall behind before it sees `RecvError::Lagged`.
const LIVE_BUFFER: usize = 1024;

impl Log {
    /// Room reserved for `events`; at most `cap` events are kept.
    pub fn new(events: usize, cap: usize) -> Log {
        let events = Vec::with_capacity(events.min(cap));
        Log { inner: Mutex::new(LogInner { events, live: None, ended: false }), cap, full: AtomicBool::new(false) }
    }

    /// Appends an event and returns its id. Once only the last slot is left, only an event that ends the
    /// execution is taken: the others are dropped, the log reports [`Log::is_full`], and the id of the
    /// last event is returned.
    pub fn append(&self, previous_event_id: u64, timestamp: DateTime<Utc>, event_type: EventType, details: Option<EventDetails>) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.events.len() + 1 >= self.cap && !event_type.ends_execution() {
            self.full.store(true, Ordering::Relaxed);
            return inner.events.len() as u64;
        }
        let id = inner.events.len() as u64 + 1;
        let event = HistoryEvent { id, previous_event_id, timestamp, event_type, details };
        if let Some(tx) = &inner.live {
            // No receivers left is fine: the subscriber went away.
            let _ = tx.send(event.clone());
        }
        if inner.events.len() == inner.events.capacity() {
            // A quarter more at a time, not double: a long history (a Map over thousands of items) would
            // otherwise hold up to twice its events' memory, and three times while the copy is made.
            let more = (inner.events.len() / 4).max(16);
            inner.events.reserve_exact(more);
        }
        inner.events.push(event);
        id
    }

    /// True once an event was refused for want of room.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// The id of the latest event (0 before the first).
    pub fn last_id(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).events.len() as u64
    }

    /// The events so far; none once the execution ended (its events taken for its outcome).
    pub fn events(&self) -> Vec<HistoryEvent> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).events.clone()
    }

    /// The events so far and a receiver for every later one, taken atomically so none is missed or
    /// repeated. After the execution ended (its events taken for its outcome) there is nothing
    /// more to come: no events and a receiver already closed, so a subscriber that came too late
    /// ends instead of waiting for ever (the outcome's history has the events).
    pub fn subscribe(&self) -> (Vec<HistoryEvent>, broadcast::Receiver<HistoryEvent>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.ended {
            return (Vec::new(), broadcast::channel(1).1);
        }
        let rx = match &inner.live {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = broadcast::channel(LIVE_BUFFER);
                inner.live = Some(tx);
                rx
            }
        };
        (inner.events.clone(), rx)
    }

    pub fn take(&self) -> Vec<HistoryEvent> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.live = None;
        inner.ended = true;
        std::mem::take(&mut inner.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_serialize_like_get_execution_history() {
        let e = HistoryEvent {
            id: 2,
            previous_event_id: 1,
            timestamp: DateTime::parse_from_rfc3339("2024-01-02T03:04:05.678Z").unwrap().with_timezone(&Utc),
            event_type: EventType::PassStateEntered,
            details: Some(EventDetails { name: Some("A".into()), input: Some(Arc::new(json!({"a": 1}))), ..Default::default() }),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"timestamp": "2024-01-02T03:04:05.678Z", "type": "PassStateEntered", "id": 2, "previousEventId": 1,
                   "stateEnteredEventDetails": {"name": "A", "input": "{\"a\":1}"}})
        );
        let failed = HistoryEvent {
            event_type: EventType::TaskFailed,
            details: Some(EventDetails::failure(Some("E".into()), Some("why".into()))),
            ..e
        };
        assert_eq!(serde_json::to_value(&failed).unwrap()["taskFailedEventDetails"], json!({"error": "E", "cause": "why"}));
        assert_eq!(EventType::TaskFailed.details_field(), "taskFailedEventDetails");
        assert_eq!(EventType::MapStateExited.details_field(), "stateExitedEventDetails");
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn events_stay_small() {
        // A Map over thousands of items records eight events per item: the uncommon fields stay out of line.
        assert!(std::mem::size_of::<HistoryEvent>() <= 96, "{} bytes", std::mem::size_of::<HistoryEvent>());
    }

    #[test]
    fn a_full_log_keeps_the_last_slot_for_the_end() {
        let log = Log::new(0, 3);
        assert_eq!(log.append(0, Utc::now(), EventType::ExecutionStarted, None), 1);
        assert_eq!(log.append(1, Utc::now(), EventType::PassStateEntered, None), 2);
        assert!(!log.is_full());
        assert_eq!(log.append(2, Utc::now(), EventType::PassStateExited, None), 2, "refused: the last slot is the end's");
        assert!(log.is_full());
        assert_eq!(log.append(2, Utc::now(), EventType::ExecutionFailed, None), 3);
        assert_eq!(log.take().len(), 3);
    }

    #[test]
    fn a_subscriber_after_the_end_gets_a_closed_receiver() {
        let log = Log::new(0, usize::MAX);
        log.append(0, Utc::now(), EventType::ExecutionStarted, None);
        assert_eq!(log.take().len(), 1);
        let (past, mut rx) = log.subscribe();
        assert!(past.is_empty());
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Closed)), "nothing more comes: the subscriber ends");
    }

    #[test]
    fn subscribers_get_the_past_and_the_future_once() {
        let log = Log::new(0, usize::MAX);
        log.append(0, Utc::now(), EventType::ExecutionStarted, None);
        let (past, mut rx) = log.subscribe();
        log.append(1, Utc::now(), EventType::ExecutionSucceeded, None);
        assert_eq!(past.len(), 1);
        assert_eq!(rx.try_recv().unwrap().id, 2);
        assert!(rx.try_recv().is_err());
    }
}
