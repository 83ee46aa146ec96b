//! A record of the AWS operations a process performs, as IAM authorises them: one
//! `<action> <resource>` line per authorised action, appended to the file named by
//! [`RECORD_ENV`]. The local stack (`crates/local-stack`) sets it on each function it runs, and
//! its IAM check compares the lines with that function's policy in `infra/template.yaml`.
//!
//! Recorded at the HTTP client every SDK client sends through, so no client can bypass it.
//! Baton's AWS services all speak the JSON protocols (`X-Amz-Target` names the operation, the
//! body the resource); a request of another protocol is recorded as `<service>:? <method> <path>`,
//! which no policy allows, so the check fails rather than miss it.

use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

/// Path of the file the operations are appended to; unset, nothing is recorded.
pub const RECORD_ENV: &str = "BATON_RECORD_AWS_OPERATIONS";

/// Appends the operations of each request to one file.
#[derive(Debug)]
pub struct OperationRecorder {
    file: Mutex<File>,
}

impl OperationRecorder {
    /// The recorder [`RECORD_ENV`] asks for, if any.
    pub fn from_env() -> std::io::Result<Option<OperationRecorder>> {
        let Some(path) = std::env::var_os(RECORD_ENV) else { return Ok(None) };
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Some(OperationRecorder { file: Mutex::new(file) }))
    }

    pub fn record(&self, request: &HttpRequest) {
        let header = |name: &str| request.headers().get(name).unwrap_or_default();
        let body: Value = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        let lines: String = authorised_actions(header("authorization"), header("x-amz-target"), &body)
            .unwrap_or_else(|| {
                vec![(format!("{}:?", signing_service(header("authorization"))), format!("{} {}", request.method(), request.uri()))]
            })
            .into_iter()
            .map(|(action, resource)| format!("{action} {resource}\n"))
            .collect();
        // One write per request: with O_APPEND, lines of concurrent requests do not interleave.
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = file.write_all(lines.as_bytes());
    }
}

/// The service of a SigV4 `Authorization` header's credential scope (`.../<date>/<region>/<service>/aws4_request`).
fn signing_service(authorization: &str) -> &str {
    authorization.split("Credential=").nth(1).and_then(|scope| scope.split('/').nth(3)).unwrap_or("unknown")
}

/// The (action, resource) pairs IAM evaluates for one JSON-protocol request. Resources are
/// full ARNs when the request names one, otherwise relative to `arn:<partition>:<service>:<region>:<account>:`.
fn authorised_actions(authorization: &str, target: &str, body: &Value) -> Option<Vec<(String, String)>> {
    let service = signing_service(authorization);
    let operation = target.rsplit_once('.')?.1;
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("*").to_string();
    let action = |op: &str| format!("{service}:{op}");
    let pairs = match service {
        "dynamodb" => dynamodb_actions(operation, body),
        "secretsmanager" => {
            let id = text("SecretId");
            vec![(action(operation), named(&id, &format!("secret:{id}")))]
        }
        "ssm" => {
            let name = text("Name");
            vec![(action(operation), named(&name, &format!("parameter/{}", name.trim_start_matches('/'))))]
        }
        "events" => {
            let buses = body.get("Entries").and_then(Value::as_array).into_iter().flatten();
            let mut pairs: Vec<_> = buses
                .map(|entry| {
                    let bus = entry.get("EventBusName").and_then(Value::as_str).unwrap_or("default");
                    (action(operation), named(bus, &format!("event-bus/{bus}")))
                })
                .collect();
            if pairs.is_empty() {
                pairs.push((action(operation), "*".into()));
            }
            pairs
        }
        "states" => vec![(action(operation), text("stateMachineArn"))],
        _ => vec![(action(operation), "*".into())],
    };
    Some(pairs)
}

/// `name` itself when it is an ARN, else `relative`.
fn named(name: &str, relative: &str) -> String {
    if name.starts_with("arn:") { name.to_string() } else { relative.to_string() }
}

/// DynamoDB authorises a transaction item by item (`TransactWriteItems` needs `PutItem`,
/// `UpdateItem`, `DeleteItem`, `ConditionCheckItem` on each item's table) and a batch per table.
fn dynamodb_actions(operation: &str, body: &Value) -> Vec<(String, String)> {
    let table = |name: &str| named(name, &format!("table/{name}"));
    let str_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("*").to_string();
    match operation {
        "TransactWriteItems" | "TransactGetItems" => {
            let items = body.get("TransactItems").and_then(Value::as_array).into_iter().flatten();
            items
                .flat_map(|item| item.as_object().into_iter().flatten())
                .map(|(kind, request)| {
                    let action = match kind.as_str() {
                        "Put" => "PutItem",
                        "Update" => "UpdateItem",
                        "Delete" => "DeleteItem",
                        "ConditionCheck" => "ConditionCheckItem",
                        _ => "GetItem",
                    };
                    (format!("dynamodb:{action}"), table(&str_of(request, "TableName")))
                })
                .collect()
        }
        "BatchWriteItem" | "BatchGetItem" => {
            let tables = body.get("RequestItems").and_then(Value::as_object).into_iter().flatten();
            tables.map(|(name, _)| (format!("dynamodb:{operation}"), table(name))).collect()
        }
        _ => {
            let name = str_of(body, "TableName");
            let resource = match body.get("IndexName").and_then(Value::as_str) {
                Some(index) => format!("{}/index/{index}", table(&name)),
                None => table(&name),
            };
            vec![(format!("dynamodb:{operation}"), resource)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DYNAMODB: &str = "AWS4-HMAC-SHA256 Credential=AKID/20260301/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x";

    #[test]
    fn queries_name_their_index_and_transactions_their_items() {
        let query = authorised_actions(DYNAMODB, "DynamoDB_20120810.Query", &json!({"TableName": "t", "IndexName": "by-service"}));
        assert_eq!(query.unwrap(), [("dynamodb:Query".to_string(), "table/t/index/by-service".to_string())]);
        let transaction = json!({"TransactItems": [{"Put": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "u"}}]});
        assert_eq!(
            authorised_actions(DYNAMODB, "DynamoDB_20120810.TransactWriteItems", &transaction).unwrap(),
            [("dynamodb:PutItem".to_string(), "table/t".to_string()), ("dynamodb:ConditionCheckItem".to_string(), "table/u".to_string())]
        );
    }

    #[test]
    fn secrets_and_buses_keep_the_arn_they_were_named_by() {
        let auth = DYNAMODB.replace("/dynamodb/", "/secretsmanager/");
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:baton/providers/x-AbCdEf";
        assert_eq!(
            authorised_actions(&auth, "secretsmanager.GetSecretValue", &json!({"SecretId": arn})).unwrap(),
            [("secretsmanager:GetSecretValue".to_string(), arn.to_string())]
        );
        let auth = DYNAMODB.replace("/dynamodb/", "/events/");
        assert_eq!(
            authorised_actions(&auth, "AWSEvents.PutEvents", &json!({"Entries": [{"EventBusName": "bus"}]})).unwrap(),
            [("events:PutEvents".to_string(), "event-bus/bus".to_string())]
        );
        assert_eq!(authorised_actions(DYNAMODB, "", &Value::Null), None, "a request without X-Amz-Target is not JSON protocol");
    }
}
