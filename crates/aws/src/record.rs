//! A record of the AWS operations a process performs, as IAM authorises them: one
//! `<action> <resource>[ <condition key>=<value>[,<value>]...]` line per authorised action (values
//! percent-escaped), appended to the file named by
//! [`RECORD_ENV`]. The local stack (`crates/local-stack`) sets it on each function it runs, and
//! its IAM check compares the lines with that function's policy in `infra/template.yaml`.
//!
//! Recorded at the HTTP client every SDK client sends through, so no client can bypass it, whatever
//! protocol the service speaks: JSON (`X-Amz-Target` names the operation, the body the resource:
//! DynamoDB, Secrets Manager, SSM, EventBridge, Step Functions, ECS, CodeBuild), REST-JSON (the
//! method and path: Lambda), query (a form body: STS) and RPC v2 CBOR (the path names the
//! operation: CloudWatch). Calls authorised on more than their own resource are recorded with
//! each: Lambda reading an `s3://` zip with the caller's credentials (`s3:GetObject`), ECS tagging
//! the task definition it registers (`ecs:TagResource`, with `ecs:CreateAction` and the request's
//! tags) and passing the roles it names (`iam:PassRole`, with `iam:PassedToService`). DynamoDB item
//! calls carry their key attributes (`dynamodb:Key/<name>`), from which the local stack, which knows
//! each table's key schema, derives `dynamodb:LeadingKeys`. A request none of these read is recorded
//! as `<service>:? <method> <path>`, which no policy allows, so the check fails rather than miss it.

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
        let body = request.body().bytes().unwrap_or_default();
        let lines: String = authorised(header("authorization"), header("x-amz-target"), request.method(), request.uri(), body)
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

/// The (action, resource) pairs IAM evaluates for one request of any protocol Baton's clients use.
fn authorised(authorization: &str, target: &str, method: &str, uri: &str, body: &[u8]) -> Option<Vec<(String, String)>> {
    if !target.is_empty() {
        return authorised_actions(authorization, target, &serde_json::from_slice(body).unwrap_or(Value::Null));
    }
    let after_host = uri.split_once("://").map_or(uri, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let (path, _query) = after_host.split_once('?').unwrap_or((after_host, ""));
    match signing_service(authorization) {
        "lambda" => lambda_actions(method, path, body),
        "sts" => {
            let form = form_fields(body);
            let action = form.iter().find(|(k, _)| k == "Action")?.1.clone();
            let role = form.iter().find(|(k, _)| k == "RoleArn").map_or("*".to_string(), |(_, v)| v.clone());
            Some(vec![(format!("sts:{action}"), role)])
        }
        // RPC v2 CBOR: `/service/<service>/operation/<Operation>`. Only CloudWatch's alarms are
        // read this way, and IAM scopes DescribeAlarms to alarms only by name, which the body holds.
        "monitoring" => {
            let operation = path.rsplit_once("/operation/")?.1;
            Some(vec![(format!("cloudwatch:{operation}"), "alarm:*".to_string())])
        }
        _ => None,
    }
}

/// Lambda's REST-JSON routes (`/2015-03-31/functions/<name>/...`) Baton calls, with the
/// function's resource; an `s3://` code update is also Lambda reading the object as the caller.
fn lambda_actions(method: &str, path: &str, body: &[u8]) -> Option<Vec<(String, String)>> {
    let rest = path.strip_prefix("/2015-03-31/functions/")?;
    let mut parts = rest.split('/');
    let function = percent_decoded(parts.next()?);
    let resource = named(&function, &format!("function:{function}"));
    let operation = match (method, parts.next(), parts.next()) {
        ("GET", None, _) => "GetFunction",
        ("GET", Some("aliases"), Some(_)) => "GetAlias",
        ("PUT", Some("aliases"), Some(_)) => "UpdateAlias",
        ("PUT", Some("code"), None) => "UpdateFunctionCode",
        ("GET", Some("configuration"), None) => "GetFunctionConfiguration",
        ("PUT", Some("configuration"), None) => "UpdateFunctionConfiguration",
        ("POST", Some("versions"), None) => "PublishVersion",
        ("POST", Some("invocations"), None) => "InvokeFunction",
        _ => return None,
    };
    let mut pairs = vec![(format!("lambda:{operation}"), resource)];
    if operation == "UpdateFunctionCode" {
        let code: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let (Some(bucket), Some(key)) = (code.get("S3Bucket").and_then(Value::as_str), code.get("S3Key").and_then(Value::as_str)) {
            pairs.push(("s3:GetObject".to_string(), format!("arn:aws:s3:::{bucket}/{key}")));
        }
    }
    Some(pairs)
}

/// The fields of a form-encoded (query protocol) body.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (percent_decoded(key), percent_decoded(&value.replace('+', " "))))
        .collect()
}

/// `%XX` escapes decoded (bytes that are not UTF-8 are replaced): form fields, Lambda's paths,
/// and the condition values of a record line.
pub fn percent_decoded(text: &str) -> String {
    baton_domain::text::decode_escapes(text, b'%')
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
        // An execution's operations (GetExecutionHistory) name it by its ARN.
        "states" => {
            let arn = body.get("stateMachineArn").or_else(|| body.get("executionArn")).and_then(Value::as_str).unwrap_or("*");
            vec![(action(operation), arn.to_string())]
        }
        "ecs" => ecs_actions(operation, body),
        "codebuild" => {
            let projects: Vec<String> = match operation {
                // Build ids are `<project>:<uuid>`.
                "BatchGetBuilds" => {
                    body.get("ids").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
                }
                "StopBuild" => vec![text("id")],
                _ => vec![text("projectName")],
            };
            projects
                .iter()
                .map(|id| {
                    let project = id.split(':').next().unwrap_or(id);
                    (action(operation), named(project, &format!("project/{project}")))
                })
                .collect()
        }
        _ => vec![(action(operation), "*".into())],
    };
    Some(pairs)
}

/// ECS names services by cluster and service; a task definition registered with tags is also
/// tagged (`ecs:TagResource` on the new revision); describing and registering task definitions
/// take no resource.
fn ecs_actions(operation: &str, body: &Value) -> Vec<(String, String)> {
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("*").to_string();
    // A cluster given by ARN: its name is the part after `cluster/`.
    let cluster = text("cluster");
    let cluster = cluster.rsplit_once('/').map_or(cluster.as_str(), |(_, name)| name).to_string();
    let cluster = if body.get("cluster").is_none() { "default".to_string() } else { cluster };
    let service = |name: &str| named(name, &format!("service/{cluster}/{name}"));
    let action = |op: &str| format!("ecs:{op}");
    match operation {
        "DescribeServices" => body
            .get("services")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| (action(operation), service(s)))
            .collect(),
        "UpdateService" => vec![(action(operation), service(&text("service")))],
        "RegisterTaskDefinition" => {
            let mut pairs = vec![(action(operation), "*".to_string())];
            let tags: Vec<(&str, &str)> = body
                .get("tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|tag| Some((tag.get("key")?.as_str()?, tag.get("value").and_then(Value::as_str).unwrap_or_default())))
                .collect();
            if !tags.is_empty() {
                let mut context = vec![
                    ("ecs:CreateAction".to_string(), vec![operation.to_string()]),
                    ("aws:TagKeys".to_string(), tags.iter().map(|(k, _)| k.to_string()).collect()),
                ];
                context.extend(tags.iter().map(|(k, v)| (format!("aws:RequestTag/{k}"), vec![v.to_string()])));
                pairs.push((action("TagResource"), with_context(&format!("task-definition/{}:*", text("family")), &context)));
            }
            // The roles the new revision names are passed to ECS by whoever registers it.
            for role in ["taskRoleArn", "executionRoleArn"].iter().filter_map(|key| body.get(*key).and_then(Value::as_str)) {
                let passed = [("iam:PassedToService".to_string(), vec!["ecs-tasks.amazonaws.com".to_string()])];
                pairs.push(("iam:PassRole".to_string(), with_context(role, &passed)));
            }
            pairs
        }
        _ => vec![(action(operation), "*".to_string())],
    }
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
                    (format!("dynamodb:{action}"), with_context(&table(&str_of(request, "TableName")), &key_attributes(request)))
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
            vec![(format!("dynamodb:{operation}"), with_context(&resource, &key_attributes(body)))]
        }
    }
}

/// The key attributes one DynamoDB item request names, as `dynamodb:Key/<name>` (IAM's
/// `dynamodb:LeadingKeys` is the partition key's, which only the table's schema tells): a
/// `Key`'s attributes, an `Item`'s short scalar ones, or the equalities of a `KeyConditionExpression`.
fn key_attributes(request: &Value) -> Vec<(String, Vec<String>)> {
    let scalar = |value: &Value| value.get("S").or_else(|| value.get("N")).and_then(Value::as_str).map(str::to_string);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    if let Some(attributes) = request.get("Key").or_else(|| request.get("Item")).and_then(Value::as_object) {
        // An item's long attributes are no keys: DynamoDB keys are short, release records are not.
        for (name, value) in attributes {
            if let Some(text) = scalar(value).filter(|t| t.len() <= 256) {
                out.push((format!("dynamodb:Key/{name}"), vec![text]));
            }
        }
    }
    if let Some(expression) = request.get("KeyConditionExpression").and_then(Value::as_str) {
        let names = request.get("ExpressionAttributeNames");
        let values = request.get("ExpressionAttributeValues");
        for clause in expression.split(" AND ").flat_map(|c| c.split(" and ")) {
            // Only equalities name a key's value (`SK >= :since` and `BETWEEN` name a range).
            let Some((left, right)) = clause.split_once('=') else { continue };
            let (left, right) = (left.trim(), right.trim());
            if left.ends_with(['<', '>', '!']) || left.contains(char::is_whitespace) {
                continue;
            }
            let name = names.and_then(|n| n.get(left)).and_then(Value::as_str).unwrap_or(left);
            if let Some(value) = values.and_then(|v| v.get(right)).and_then(scalar) {
                out.push((format!("dynamodb:Key/{name}"), vec![value]));
            }
        }
    }
    out
}

/// `resource` followed by condition keys, as the record's line carries them.
fn with_context(resource: &str, context: &[(String, Vec<String>)]) -> String {
    let mut out = resource.to_string();
    for (key, values) in context {
        let values: Vec<String> = values.iter().map(|v| escaped(v)).collect();
        out += &format!(" {key}={}", values.join(","));
    }
    out
}

/// The characters that separate a record line's fields, percent-escaped.
fn escaped(value: &str) -> String {
    value.replace('%', "%25").replace(' ', "%20").replace(',', "%2C").replace('\n', "%0A")
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
    fn item_calls_carry_their_key_attributes() {
        let delete = json!({"TableName": "t", "Key": {"PK": {"S": "LOCK#web#prod"}, "SK": {"S": "LOCK"}}});
        assert_eq!(
            authorised_actions(DYNAMODB, "DynamoDB_20120810.DeleteItem", &delete).unwrap(),
            [("dynamodb:DeleteItem".to_string(), "table/t dynamodb:Key/PK=LOCK#web#prod dynamodb:Key/SK=LOCK".to_string())]
        );
        let long = "x".repeat(300);
        let put = json!({"TableName": "t", "Item": {"PK": {"S": "REL#1"}, "body": {"S": long}, "n": {"N": "3"}, "l": {"L": []}}});
        assert_eq!(
            authorised_actions(DYNAMODB, "DynamoDB_20120810.PutItem", &put).unwrap(),
            [("dynamodb:PutItem".to_string(), "table/t dynamodb:Key/PK=REL#1 dynamodb:Key/n=3".to_string())]
        );
        let query = json!({
            "TableName": "t", "IndexName": "by-service",
            "KeyConditionExpression": "#pk = :pk AND SK >= :since",
            "ExpressionAttributeNames": {"#pk": "GSI1PK"},
            "ExpressionAttributeValues": {":pk": {"S": "SVC#web"}, ":since": {"S": "2026"}}
        });
        assert_eq!(
            authorised_actions(DYNAMODB, "DynamoDB_20120810.Query", &query).unwrap(),
            [("dynamodb:Query".to_string(), "table/t/index/by-service dynamodb:Key/GSI1PK=SVC#web".to_string())]
        );
    }

    #[test]
    fn secrets_buses_and_executions_keep_the_arn_they_were_named_by() {
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
        let execution = "arn:aws:states:us-east-1:1:execution:ReleaseStateMachine-Xb2G:run-1";
        assert_eq!(
            authorised_actions(
                &DYNAMODB.replace("/dynamodb/", "/states/"),
                "AWSStepFunctions.GetExecutionHistory",
                &json!({"executionArn": execution})
            )
            .unwrap(),
            [("states:GetExecutionHistory".to_string(), execution.to_string())]
        );
    }

    fn auth(service: &str) -> String {
        DYNAMODB.replace("/dynamodb/", &format!("/{service}/"))
    }

    fn actions(found: Option<Vec<(String, String)>>) -> Vec<(String, String)> {
        found.expect("a request the recorder reads")
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(a, r)| (a.to_string(), r.to_string())).collect()
    }

    #[test]
    fn lambda_calls_are_read_from_their_route_and_a_zip_from_s3_is_read_as_the_caller() {
        let lambda = auth("lambda");
        let base = "https://lambda.us-east-1.amazonaws.com/2015-03-31/functions";
        let code = json!({"S3Bucket": "acme-builds", "S3Key": "checkout/4f2a9c1e.zip"}).to_string();
        // (method, URI, body, what IAM authorises)
        type Case<'a> = (&'a str, String, &'a [u8], Vec<(String, String)>);
        let cases: Vec<Case> = vec![
            (
                "PUT",
                format!("{base}/checkout/code"),
                code.as_bytes(),
                pairs(&[
                    ("lambda:UpdateFunctionCode", "function:checkout"),
                    ("s3:GetObject", "arn:aws:s3:::acme-builds/checkout/4f2a9c1e.zip"),
                ]),
            ),
            ("PUT", format!("{base}/checkout/code"), br#"{"ImageUri": "x"}"#, pairs(&[("lambda:UpdateFunctionCode", "function:checkout")])),
            ("GET", format!("{base}/checkout/aliases/live"), b"", pairs(&[("lambda:GetAlias", "function:checkout")])),
            ("PUT", format!("{base}/checkout/aliases/live"), b"{}", pairs(&[("lambda:UpdateAlias", "function:checkout")])),
            ("POST", format!("{base}/checkout/versions"), b"{}", pairs(&[("lambda:PublishVersion", "function:checkout")])),
            (
                "GET",
                format!("{base}/arn%3Aaws%3Alambda%3Aeu-west-1%3A2%3Afunction%3Aledger/configuration?Qualifier=7"),
                b"",
                pairs(&[("lambda:GetFunctionConfiguration", "arn:aws:lambda:eu-west-1:2:function:ledger")]),
            ),
        ];
        for (method, uri, body, expected) in cases {
            assert_eq!(actions(authorised(&lambda, "", method, &uri, body)), expected, "{method} {uri}");
        }
        assert_eq!(authorised(&lambda, "", "DELETE", &format!("{base}/checkout"), b""), None, "unknown routes are not guessed");
    }

    #[test]
    fn query_and_cbor_calls_name_their_operation_and_resource() {
        let assume =
            b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A210987654321%3Arole%2Fdeployer&RoleSessionName=baton";
        assert_eq!(
            actions(authorised(&auth("sts"), "", "POST", "https://sts.amazonaws.com/", assume)),
            pairs(&[("sts:AssumeRole", "arn:aws:iam::210987654321:role/deployer")])
        );
        let uri = "https://monitoring.us-east-1.amazonaws.com/service/GraniteServiceVersion20100801/operation/DescribeAlarms";
        assert_eq!(actions(authorised(&auth("monitoring"), "", "POST", uri, b"\xa0")), pairs(&[("cloudwatch:DescribeAlarms", "alarm:*")]));
    }

    #[test]
    fn ecs_and_codebuild_calls_name_services_projects_and_the_tagging_of_new_revisions() {
        let ecs = |op: &str, body: Value| {
            actions(authorised(&auth("ecs"), &format!("AmazonEC2ContainerServiceV20141113.{op}"), "POST", "/", body.to_string().as_bytes()))
        };
        assert_eq!(
            ecs("UpdateService", json!({"cluster": "web", "service": "web-canary"})),
            pairs(&[("ecs:UpdateService", "service/web/web-canary")])
        );
        assert_eq!(
            ecs("DescribeServices", json!({"cluster": "arn:aws:ecs:us-east-1:1:cluster/web", "services": ["a", "b"]})),
            pairs(&[("ecs:DescribeServices", "service/web/a"), ("ecs:DescribeServices", "service/web/b")])
        );
        assert_eq!(
            ecs(
                "RegisterTaskDefinition",
                json!({"family": "web", "taskRoleArn": "arn:aws:iam::1:role/web-task", "tags": [{"key": "team", "value": "web, api"}]})
            ),
            pairs(&[
                ("ecs:RegisterTaskDefinition", "*"),
                (
                    "ecs:TagResource",
                    "task-definition/web:* ecs:CreateAction=RegisterTaskDefinition aws:TagKeys=team aws:RequestTag/team=web%2C%20api"
                ),
                ("iam:PassRole", "arn:aws:iam::1:role/web-task iam:PassedToService=ecs-tasks.amazonaws.com"),
            ])
        );
        assert_eq!(ecs("RegisterTaskDefinition", json!({"family": "web"})), pairs(&[("ecs:RegisterTaskDefinition", "*")]));
        let codebuild = |op: &str, body: Value| {
            actions(authorised(&auth("codebuild"), &format!("CodeBuild_20161006.{op}"), "POST", "/", body.to_string().as_bytes()))
        };
        assert_eq!(codebuild("StartBuild", json!({"projectName": "inventory"})), pairs(&[("codebuild:StartBuild", "project/inventory")]));
        assert_eq!(
            codebuild("BatchGetBuilds", json!({"ids": ["inventory:1a2b"]})),
            pairs(&[("codebuild:BatchGetBuilds", "project/inventory")])
        );
    }
}
