//! The context object (`$$`) as the running state sees it.
use super::engine::{Execution, StateRun};
use crate::definition::Kind;
use crate::env::ContextSource;
use crate::jsonpath::JsonPath;
use chrono::SecondsFormat;
use serde_json::{Map, Value, json};

/// `$$` as the running state sees it.
pub(crate) struct StateContext<'a> {
    pub(crate) exec: &'a Execution,
    pub(crate) run: &'a StateRun<'a>,
}

impl ContextSource for StateContext<'_> {
    fn build(&self, part: Option<&str>) -> Value {
        let (exec, run) = (self.exec, self.run);
        let wanted = |key: &str| part.is_none_or(|p| p == key);
        let mut ctx = Map::new();
        if wanted("Execution") {
            let execution = json!({
                "Id": exec.arn,
                "Input": exec.input.as_ref(),
                "StartTime": exec.started_text,
                "Name": exec.name,
                "RoleArn": exec.role_arn,
                "RedriveCount": 0,
            });
            ctx.insert("Execution".into(), execution);
        }
        if wanted("State") {
            let entered = run.entered_at.to_rfc3339_opts(SecondsFormat::Millis, true);
            let mut state = json!({"EnteredTime": entered, "Name": run.state.name.as_ref()});
            // AWS shows RetryCount only in states that can be retried.
            if matches!(run.state.kind, Kind::Task(_) | Kind::Parallel(_) | Kind::Map(_)) {
                state["RetryCount"] = json!(run.retry_count);
            }
            ctx.insert("State".into(), state);
        }
        if wanted("StateMachine") {
            ctx.insert("StateMachine".into(), json!({"Id": exec.state_machine_arn, "Name": exec.state_machine_name}));
        }
        if let Some(token) = run.task_token.as_ref().filter(|_| wanted("Task")) {
            ctx.insert("Task".into(), json!({"Token": token}));
        }
        if let Some((index, value)) = run.map_item.as_ref().filter(|_| wanted("Map")) {
            ctx.insert("Map".into(), json!({"Item": {"Index": index, "Value": value}}));
        }
        Value::Object(ctx)
    }

    /// The two document-valued fields, the execution input and the Map item, are read where they are
    /// instead of being copied into a context object and then out of it (and the item's index beside it).
    fn query(&self, path: &JsonPath) -> Option<Value> {
        if path.is_definite() {
            match (path.name_at(0), path.name_at(1), path.name_at(2)) {
                (Some("Execution"), Some("Input"), _) => return path.query_below(&self.exec.input, 2),
                (Some("Map"), Some("Item"), Some(field @ ("Value" | "Index"))) => {
                    if let Some((index, item)) = &self.run.map_item {
                        return match field {
                            "Value" => path.query_below(item, 3),
                            _ => path.query_below(&Value::from(*index), 3),
                        };
                    }
                }
                _ => {}
            }
        }
        path.query(&self.build(path.first_name()))
    }
}
