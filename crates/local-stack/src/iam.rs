//! The template's IAM policies checked against what the code did, both ways: every recorded
//! operation must be allowed by its principal's policy, and every grant should have been used
//! by some run, or say in a comment in the template why it is kept.
//!
//! Policies are read from the template with intrinsics resolved to the local stack's names; SAM
//! policy templates are expanded to the actions and resources of AWS's SAM policy template list
//! (`samtranslator/policy_templates_data/policy_templates.json`). A statement's `Condition` is
//! evaluated as IAM evaluates it against the condition keys the record carries (`ecs:CreateAction`,
//! `dynamodb:LeadingKeys`, `iam:PassedToService`, request tags): a key the record lacks fails a
//! condition that needs it, so the check denies rather than guesses. A `Deny` statement wins over
//! every `Allow`, as in IAM; a managed policy, an unknown policy template or an unknown condition
//! operator is refused rather than guessed at.

use crate::template::{Template, TemplateError};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One (action pattern, resource pattern) pair of a principal's policy, under its statement's conditions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub action: String,
    pub resource: String,
    pub conditions: Vec<Condition>,
}

/// One test of a statement's `Condition` block: `{"<operator>": {"<key>": [values]}}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

/// One AWS operation as IAM authorises it, with the resource's full ARN and the request's
/// condition keys (by key: its values).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub action: String,
    pub resource: String,
    pub context: BTreeMap<String, Vec<String>>,
}

impl Operation {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Operation {
        Operation { action: action.into(), resource: resource.into(), context: BTreeMap::new() }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)?;
        for (key, values) in &self.context {
            write!(f, " ({key} = {})", values.join(", "))?;
        }
        Ok(())
    }
}

/// The outcome of [`check`] for one principal (a function or the state machine, by logical id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalReport {
    /// Operations the code performed that the policy does not allow: on AWS, AccessDenied.
    pub denied: Vec<Operation>,
    /// Grants no recorded operation used.
    pub unused: Vec<Grant>,
    /// Unused grants the template explains in a comment of the principal's block naming the
    /// action (or all of its service's, `logs:*`).
    pub justified: Vec<Grant>,
}

/// The grants of a function, a state machine (their `Policies`) or a role (its inline policies).
pub fn grants(template: &Template, logical_id: &str) -> Result<Vec<Grant>, TemplateError> {
    Ok(policy(template, logical_id)?.allowed)
}

/// A principal's statements as (action, resource) pairs, by effect.
struct Policy {
    allowed: Vec<Grant>,
    denied: Vec<Grant>,
}

fn policy(template: &Template, logical_id: &str) -> Result<Policy, TemplateError> {
    let properties = template.properties(logical_id)?;
    let mut statements = Vec::new();
    match template.resource_type(logical_id)? {
        "AWS::IAM::Role" => {
            for policy in properties.get("Policies").and_then(Value::as_array).into_iter().flatten() {
                statements.extend(policy.pointer("/PolicyDocument/Statement").and_then(Value::as_array).into_iter().flatten().cloned());
            }
        }
        _ => {
            for policy in properties.get("Policies").and_then(Value::as_array).into_iter().flatten() {
                match policy {
                    Value::Object(map) if map.contains_key("Statement") => {
                        statements.extend(map["Statement"].as_array().into_iter().flatten().cloned())
                    }
                    Value::Object(map) if map.len() == 1 => {
                        let (name, parameters) = map.iter().next().expect("one entry");
                        statements.extend(policy_template(template, name, parameters)?);
                    }
                    other => return Err(TemplateError::Invalid(format!("{logical_id}: policy {other} is not checked locally"))),
                }
            }
        }
    }
    let (mut allowed, mut denied) = (BTreeSet::new(), BTreeSet::new());
    for statement in statements {
        let out = match statement.get("Effect").and_then(Value::as_str) {
            Some("Allow") => &mut allowed,
            Some("Deny") => &mut denied,
            _ => return Err(TemplateError::Invalid(format!("{logical_id}: a statement without a valid Effect: {statement}"))),
        };
        let strings = |key: &str| -> Vec<String> {
            match statement.get(key) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                _ => Vec::new(),
            }
        };
        let conditions = conditions(logical_id, statement.get("Condition"))?;
        for action in strings("Action") {
            for resource in strings("Resource") {
                out.insert(Grant { action: action.clone(), resource, conditions: conditions.clone() });
            }
        }
    }
    Ok(Policy { allowed: allowed.into_iter().collect(), denied: denied.into_iter().collect() })
}

/// The condition operators the check evaluates (each also with `IfExists`, and with the
/// `ForAllValues:` / `ForAnyValue:` set qualifiers).
const OPERATORS: [&str; 9] =
    ["StringEquals", "StringNotEquals", "StringLike", "StringNotLike", "ArnEquals", "ArnNotEquals", "ArnLike", "ArnNotLike", "Bool"];

fn conditions(logical_id: &str, block: Option<&Value>) -> Result<Vec<Condition>, TemplateError> {
    let mut out = Vec::new();
    for (operator, tests) in block.and_then(Value::as_object).into_iter().flatten() {
        let base = operator.trim_start_matches("ForAllValues:").trim_start_matches("ForAnyValue:").trim_end_matches("IfExists");
        if !OPERATORS.contains(&base) {
            return Err(TemplateError::Invalid(format!("{logical_id}: condition operator {operator} is not checked locally")));
        }
        for (key, values) in tests.as_object().into_iter().flatten() {
            let values = match values {
                Value::Array(items) => items.iter().map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).collect(),
                Value::String(text) => vec![text.clone()],
                other => vec![other.to_string()],
            };
            out.push(Condition { operator: operator.clone(), key: key.clone(), values });
        }
    }
    Ok(out)
}

impl Condition {
    /// Whether the request's condition keys satisfy this test, as IAM decides it: a key the
    /// request lacks fails a positive test and passes a negated one (`...Not...`), `IfExists` and
    /// `ForAllValues:` (true over no values); `ForAnyValue:` needs one value to match.
    pub fn holds(&self, context: &BTreeMap<String, Vec<String>>) -> bool {
        let for_all = self.operator.starts_with("ForAllValues:");
        let base = self.operator.trim_start_matches("ForAllValues:").trim_start_matches("ForAnyValue:");
        let (base, if_exists) = match base.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (base, false),
        };
        let negated = base.contains("Not");
        // Condition keys are case-insensitive.
        let present = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(&self.key)).map(|(_, v)| v);
        let Some(values) = present.filter(|v| !v.is_empty()) else {
            return for_all || negated || if_exists;
        };
        // ARN operators take wildcards whether `Equals` or `Like`; `Bool` compares `true`/`false`.
        let matches_one = |value: &String| {
            self.values.iter().any(|wanted| {
                if base.starts_with("Arn") || base.ends_with("Like") {
                    wildcard_match(wanted, value)
                } else if base == "Bool" {
                    wanted.eq_ignore_ascii_case(value)
                } else {
                    wanted == value
                }
            })
        };
        let positive = if for_all { values.iter().all(matches_one) } else { values.iter().any(matches_one) };
        if negated { !positive } else { positive }
    }
}

/// A SAM policy template's statements, from AWS's list.
fn policy_template(template: &Template, name: &str, parameters: &Value) -> Result<Vec<Value>, TemplateError> {
    let names = template.names();
    let (region, account) = (&names.region, &names.account);
    let parameter = |key: &str| {
        parameters
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| TemplateError::Invalid(format!("{name}: parameter {key} missing")))
    };
    let allow = |actions: &[&str], resources: Vec<String>| serde_json::json!({"Effect": "Allow", "Action": actions, "Resource": resources});
    let dynamodb = |actions: &[&str], with_indexes: bool| -> Result<Vec<Value>, TemplateError> {
        let table = format!("arn:aws:dynamodb:{region}:{account}:table/{}", parameter("TableName")?);
        let mut resources = vec![table.clone()];
        if with_indexes {
            resources.push(format!("{table}/index/*"));
        }
        Ok(vec![allow(actions, resources)])
    };
    Ok(match name {
        "DynamoDBCrudPolicy" => dynamodb(
            &[
                "dynamodb:GetItem",
                "dynamodb:DeleteItem",
                "dynamodb:PutItem",
                "dynamodb:Scan",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
                "dynamodb:BatchWriteItem",
                "dynamodb:BatchGetItem",
                "dynamodb:DescribeTable",
                "dynamodb:ConditionCheckItem",
            ],
            true,
        )?,
        "DynamoDBReadPolicy" => {
            dynamodb(&["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:DescribeTable"], true)?
        }
        "DynamoDBWritePolicy" => dynamodb(&["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"], true)?,
        "LambdaInvokePolicy" => {
            vec![allow(
                &["lambda:InvokeFunction"],
                vec![format!("arn:aws:lambda:{region}:{account}:function:{}*", parameter("FunctionName")?)],
            )]
        }
        "AWSSecretsManagerGetSecretValuePolicy" => vec![allow(&["secretsmanager:GetSecretValue"], vec![parameter("SecretArn")?])],
        "SSMParameterReadPolicy" => vec![
            allow(&["ssm:DescribeParameters"], vec!["*".into()]),
            allow(
                &["ssm:GetParameters", "ssm:GetParameter", "ssm:GetParametersByPath"],
                vec![format!("arn:aws:ssm:{region}:{account}:parameter/{}", parameter("ParameterName")?)],
            ),
        ],
        "EventBridgePutEventsPolicy" => {
            vec![allow(&["events:PutEvents"], vec![format!("arn:aws:events:{region}:{account}:event-bus/{}", parameter("EventBusName")?)])]
        }
        "SQSSendMessagePolicy" => {
            vec![allow(&["sqs:SendMessage*"], vec![format!("arn:aws:sqs:{region}:{account}:{}", parameter("QueueName")?)])]
        }
        "StepFunctionsExecutionPolicy" => vec![allow(
            &["states:StartExecution"],
            vec![format!("arn:aws:states:{region}:{account}:stateMachine:{}", parameter("StateMachineName")?)],
        )],
        other => return Err(TemplateError::Invalid(format!("SAM policy template {other} is not in the local list"))),
    })
}

/// Reads a record written through `baton_aws::record` (`<action> <resource>[ <key>=<values>]...`
/// lines), turning relative resources into ARNs of the local stack's region and account.
pub fn read_operations(text: &str, region: &str, account: &str) -> BTreeSet<Operation> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (action, resource) = (fields.next()?, fields.next()?);
            let service = action.split(':').next().unwrap_or_default();
            let resource = if resource.starts_with("arn:") || resource == "*" {
                resource.to_string()
            } else {
                format!("arn:aws:{service}:{region}:{account}:{resource}")
            };
            let mut operation = Operation::new(action, resource);
            for (key, values) in fields.filter_map(|field| field.split_once('=')) {
                operation.context.insert(key.to_string(), values.split(',').map(baton_aws::record::percent_decoded).collect());
            }
            Some(operation)
        })
        .collect()
}

/// DynamoDB's `dynamodb:LeadingKeys` for the recorded key attributes (`dynamodb:Key/<name>`):
/// the value of the table's (or the queried index's) partition key, which `hash_keys` gives by
/// table ARN (and `<table ARN>/index/<name>`).
pub fn with_leading_keys(operation: Operation, hash_keys: &BTreeMap<String, String>) -> Operation {
    let Operation { action, resource, context } = operation;
    let hash_key = hash_keys.get(&resource).map(|name| format!("dynamodb:Key/{name}"));
    let mut out = Operation::new(action, resource);
    for (key, values) in context {
        if Some(&key) == hash_key.as_ref() {
            out.context.insert("dynamodb:LeadingKeys".into(), values);
        } else if !key.starts_with("dynamodb:Key/") {
            out.context.insert(key, values);
        }
    }
    out
}

/// Checks one principal's recorded operations against its grants.
pub fn check(template: &Template, logical_id: &str, operations: &BTreeSet<Operation>) -> Result<PrincipalReport, TemplateError> {
    let Policy { allowed: grants, denied: denials } = policy(template, logical_id)?;
    let permitted = |op: &Operation| grants.iter().any(|g| allows(g, op)) && !denials.iter().any(|d| allows(d, op));
    let mut report =
        PrincipalReport { denied: operations.iter().filter(|op| !permitted(op)).cloned().collect(), ..PrincipalReport::default() };
    let block = resource_block(template.text(), logical_id);
    for grant in grants.iter().filter(|g| !operations.iter().any(|op| allows(g, op))) {
        let service_wide = format!("{}:*", grant.action.split(':').next().unwrap_or_default());
        let explained =
            block.iter().any(|line| line.trim_start().starts_with('#') && (line.contains(&grant.action) || line.contains(&service_wide)));
        let list = if explained { &mut report.justified } else { &mut report.unused };
        list.push(grant.clone());
    }
    Ok(report)
}

/// Each grant some operation used, with the operations no other grant allows: what taking that
/// one grant out of the template would deny. An empty list: other grants cover all it was used for.
pub fn needed(
    template: &Template,
    logical_id: &str,
    operations: &BTreeSet<Operation>,
) -> Result<Vec<(Grant, Vec<Operation>)>, TemplateError> {
    let grants = policy(template, logical_id)?.allowed;
    Ok(grants
        .iter()
        .enumerate()
        .filter(|(_, grant)| operations.iter().any(|op| allows(grant, op)))
        .map(|(at, grant)| {
            let others = || grants.iter().enumerate().filter(move |(other, _)| *other != at).map(|(_, g)| g);
            let only_this = operations.iter().filter(|op| allows(grant, op) && !others().any(|g| allows(g, op))).cloned().collect();
            (grant.clone(), only_this)
        })
        .collect())
}

/// Whether a statement's (action, resource, conditions) covers the operation.
fn allows(grant: &Grant, op: &Operation) -> bool {
    wildcard_match(&grant.action.to_ascii_lowercase(), &op.action.to_ascii_lowercase())
        && wildcard_match(&grant.resource, &op.resource)
        && grant.conditions.iter().all(|c| c.holds(&op.context))
}

/// The lines of a resource's block in the template text (`  <LogicalId>:` to the next resource).
fn resource_block<'a>(text: &'a str, logical_id: &str) -> Vec<&'a str> {
    let header = format!("  {logical_id}:");
    let mut lines = text.lines().skip_while(|line| line.trim_end() != header);
    let Some(first) = lines.next() else { return Vec::new() };
    let rest = lines.take_while(|line| {
        let indent = line.len() - line.trim_start().len();
        line.trim().is_empty() || line.trim_start().starts_with('#') || indent > 2
    });
    std::iter::once(first).chain(rest).collect()
}

/// IAM's wildcards: `*` any run of characters, `?` one character.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A readable report of all principals: denied operations first.
pub fn render(reports: &BTreeMap<String, PrincipalReport>) -> String {
    let mut out = String::new();
    for (principal, report) in reports {
        for op in &report.denied {
            out += &format!("DENIED  {principal}: {op}\n");
        }
        for grant in &report.unused {
            out += &format!(
                "UNUSED  {principal}: {} on {}{} (remove it, or say why in a comment naming the action)\n",
                grant.action,
                grant.resource,
                conditioned(grant)
            );
        }
        for grant in &report.justified {
            out += &format!(
                "kept    {principal}: {} on {}{} (unused here; the template says why)\n",
                grant.action,
                grant.resource,
                conditioned(grant)
            );
        }
    }
    out
}

fn conditioned(grant: &Grant) -> String {
    grant.conditions.iter().map(|c| format!(" if {} {} {:?}", c.operator, c.key, c.values)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(wildcard_match("arn:aws:dynamodb:r:a:table/t/index/*", "arn:aws:dynamodb:r:a:table/t/index/by-service"));
        assert!(!wildcard_match("arn:aws:dynamodb:r:a:table/t", "arn:aws:dynamodb:r:a:table/t/index/by-service"));
        assert!(wildcard_match("arn:aws:lambda:r:a:function:f*", "arn:aws:lambda:r:a:function:f:live"));
        assert!(wildcard_match("sqs:SendMessage*", "sqs:SendMessageBatch"));
        assert!(wildcard_match("s?s", "sqs") && !wildcard_match("s?s", "ss"));
    }

    #[test]
    fn records_become_arns() {
        let ops = read_operations(
            "dynamodb:Query table/t/index/i\nsecretsmanager:GetSecretValue arn:aws:secretsmanager:r:a:secret:s\n",
            "r",
            "a",
        );
        let ops: Vec<_> = ops.into_iter().map(|o| (o.action, o.resource)).collect();
        assert_eq!(
            ops,
            [
                ("dynamodb:Query".to_string(), "arn:aws:dynamodb:r:a:table/t/index/i".to_string()),
                ("secretsmanager:GetSecretValue".to_string(), "arn:aws:secretsmanager:r:a:secret:s".to_string())
            ]
        );
    }
}
