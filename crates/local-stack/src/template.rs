//! The SAM template (`infra/template.yaml`) read the way CloudFormation reads it, with local
//! names: short-form intrinsics (`!Ref`, `!GetAtt`, `!Sub`, ...) become their JSON forms, SAM's
//! `Globals` are merged into each function, and [`Template::resolve`] evaluates the intrinsics
//! against a stack name, region and account, giving every resource the physical name and ARN
//! CloudFormation would give it (without CloudFormation's random suffixes).

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: not YAML: {1}")]
    Yaml(PathBuf, String),
    #[error("template: {0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(message.into())
}

/// Where the stack lives: the values of CloudFormation's pseudo parameters.
#[derive(Debug, Clone)]
pub struct StackNames {
    pub stack_name: String,
    pub region: String,
    pub account: String,
}

/// The template, in CloudFormation's JSON form, with the stack it is resolved for.
#[derive(Debug, Clone)]
pub struct Template {
    dir: PathBuf,
    text: String,
    root: Value,
    names: StackNames,
    parameters: BTreeMap<String, String>,
    /// Parameters of type `CommaDelimitedList`, whose `!Ref` is a list.
    list_parameters: Vec<String>,
}

/// One Lambda function as the template declares it, Globals merged and intrinsics resolved.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// Physical name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub name: String,
    pub arn: String,
    /// `Metadata.BuildProperties.Binary`: the cargo binary cargo-lambda packages.
    pub binary: String,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub environment: BTreeMap<String, String>,
    /// `LoggingConfig.LogFormat` (`JSON` or `Text`).
    pub log_format: String,
    pub reserved_concurrency: Option<u64>,
    /// `AutoPublishAlias`: the alias the stack's references invoke.
    pub alias: Option<String>,
}

impl Template {
    /// Reads `path` for the stack `names`, parameters at their defaults unless `overrides` says otherwise.
    pub fn load(path: &Path, names: StackNames, overrides: &BTreeMap<String, String>) -> Result<Template, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|e| TemplateError::Read(path.to_path_buf(), e))?;
        let docs = Yaml::load_from_str(&text).map_err(|e| TemplateError::Yaml(path.to_path_buf(), e.to_string()))?;
        let root = docs.first().map(to_json).transpose()?.ok_or_else(|| invalid("empty template"))?;
        let mut template = Template {
            dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            text,
            root,
            names,
            parameters: BTreeMap::new(),
            list_parameters: Vec::new(),
        };
        let declared = template.root.get("Parameters").and_then(Value::as_object).cloned().unwrap_or_default();
        for (name, declaration) in declared {
            let value = match overrides.get(&name) {
                Some(value) => value.clone(),
                None => scalar_text(declaration.get("Default").ok_or_else(|| invalid(format!("parameter {name} has no default")))?)?,
            };
            if declaration.get("Type").and_then(Value::as_str) == Some("CommaDelimitedList") {
                template.list_parameters.push(name.clone());
            }
            template.parameters.insert(name, value);
        }
        Ok(template)
    }

    /// The template's text (comments included).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The template's parameters with the values the stack is resolved for.
    pub fn parameters(&self) -> &BTreeMap<String, String> {
        &self.parameters
    }

    pub fn names(&self) -> &StackNames {
        &self.names
    }

    /// The template's resources by logical id, unresolved.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.root.get("Resources").and_then(Value::as_object).into_iter().flatten().map(|(id, r)| (id.as_str(), r))
    }

    pub fn resource(&self, logical_id: &str) -> Result<&Value, TemplateError> {
        self.root.get("Resources").and_then(|r| r.get(logical_id)).ok_or_else(|| invalid(format!("no resource {logical_id}")))
    }

    pub fn resource_type(&self, logical_id: &str) -> Result<&str, TemplateError> {
        self.resource(logical_id)?.get("Type").and_then(Value::as_str).ok_or_else(|| invalid(format!("{logical_id} has no Type")))
    }

    /// Logical ids of the resources of `kind`, in template order.
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.resources().filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind)).map(|(id, _)| id)
    }

    /// A resource's `Properties`, SAM's `Globals` merged in for functions, intrinsics resolved.
    pub fn properties(&self, logical_id: &str) -> Result<Value, TemplateError> {
        let resource = self.resource(logical_id)?;
        let mut properties = resource.get("Properties").cloned().unwrap_or_else(|| json!({}));
        if self.resource_type(logical_id)? == "AWS::Serverless::Function"
            && let Some(globals) = self.root.get("Globals").and_then(|g| g.get("Function"))
        {
            let mut merged = globals.clone();
            merge(&mut merged, properties);
            properties = merged;
        }
        self.resolve(&properties)
    }

    /// The template's functions, in template order.
    pub fn functions(&self) -> Result<Vec<FunctionSpec>, TemplateError> {
        self.of_type("AWS::Serverless::Function").map(|id| self.function(id)).collect()
    }

    pub fn function(&self, logical_id: &str) -> Result<FunctionSpec, TemplateError> {
        let properties = self.properties(logical_id)?;
        // Numbers given by a parameter (`!Ref WebhookConcurrency`) resolve to text.
        let number = |key: &str| properties.get(key).and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        let binary = self.resource(logical_id)?.pointer("/Metadata/BuildProperties/Binary").and_then(Value::as_str);
        let environment = match properties.pointer("/Environment/Variables") {
            Some(Value::Object(vars)) => {
                vars.iter().map(|(k, v)| Ok((k.clone(), scalar_text(v)?))).collect::<Result<_, TemplateError>>()?
            }
            _ => BTreeMap::new(),
        };
        Ok(FunctionSpec {
            logical_id: logical_id.to_string(),
            name: self.physical_name(logical_id)?,
            arn: self.arn(logical_id)?,
            binary: binary.ok_or_else(|| invalid(format!("{logical_id} has no Metadata.BuildProperties.Binary")))?.to_string(),
            // SAM's defaults when neither the function nor Globals say.
            timeout: Duration::from_secs(number("Timeout").unwrap_or(3)),
            memory_mb: number("MemorySize").unwrap_or(128),
            environment,
            log_format: properties.pointer("/LoggingConfig/LogFormat").and_then(Value::as_str).unwrap_or("Text").to_string(),
            reserved_concurrency: number("ReservedConcurrentExecutions"),
            alias: properties.get("AutoPublishAlias").and_then(Value::as_str).map(str::to_string),
        })
    }

    /// A state machine's definition with its `DefinitionSubstitutions` made, as `sam deploy` makes them.
    pub fn state_machine_definition(&self, logical_id: &str) -> Result<String, TemplateError> {
        let properties = self.properties(logical_id)?;
        let uri =
            properties.get("DefinitionUri").and_then(Value::as_str).ok_or_else(|| invalid(format!("{logical_id} has no DefinitionUri")))?;
        let path = self.dir.join(uri);
        let mut definition = std::fs::read_to_string(&path).map_err(|e| TemplateError::Read(path, e))?;
        for (key, value) in properties.get("DefinitionSubstitutions").and_then(Value::as_object).into_iter().flatten() {
            definition = definition.replace(&format!("${{{key}}}"), &scalar_text(value)?);
        }
        Ok(definition)
    }

    /// The value of one of the template's `Outputs`.
    pub fn output(&self, name: &str) -> Result<String, TemplateError> {
        let value = self.root.pointer(&format!("/Outputs/{name}/Value")).ok_or_else(|| invalid(format!("no output {name}")))?;
        scalar_text(&self.resolve(value)?)
    }

    /// What `!Ref <logical_id>` gives.
    pub fn reference(&self, logical_id: &str) -> Result<String, TemplateError> {
        if let Some(value) = self.parameters.get(logical_id) {
            return Ok(value.clone());
        }
        if let Some(function) = logical_id.strip_suffix(".Alias") {
            // SAM's `!Ref Function.Alias`: the ARN of the alias AutoPublishAlias creates.
            let alias = self.properties(function)?.get("AutoPublishAlias").and_then(Value::as_str).map(str::to_string);
            let alias = alias.ok_or_else(|| invalid(format!("{function}.Alias: the function has no AutoPublishAlias")))?;
            return Ok(format!("{}:{alias}", self.arn(function)?));
        }
        let StackNames { region, account, .. } = &self.names;
        Ok(match self.resource_type(logical_id)? {
            "AWS::Serverless::StateMachine" | "AWS::SecretsManager::Secret" | "AWS::SNS::Topic" => self.arn(logical_id)?,
            "AWS::SQS::Queue" => format!("https://sqs.{region}.amazonaws.com/{account}/{}", self.physical_name(logical_id)?),
            _ => self.physical_name(logical_id)?,
        })
    }

    /// What `!GetAtt <logical_id>.<attribute>` gives.
    pub fn attribute(&self, logical_id: &str, attribute: &str) -> Result<String, TemplateError> {
        match attribute {
            "Arn" => self.arn(logical_id),
            "Name" | "TopicName" | "QueueName" => self.physical_name(logical_id),
            // SAM's function URL resource (`<Function>Url`): a local stack serves none.
            "FunctionUrl" => Ok("http://127.0.0.1/".into()),
            _ => Err(invalid(format!("cannot resolve !GetAtt {logical_id}.{attribute}"))),
        }
    }

    /// The physical name: the resource's own name property, else `<stack>-<LogicalId>`.
    pub fn physical_name(&self, logical_id: &str) -> Result<String, TemplateError> {
        if let Some(function) = logical_id.strip_suffix("Url") {
            return self.physical_name(function);
        }
        let resource = self.resource(logical_id)?;
        let keys =
            ["Name", "TableName", "FunctionName", "QueueName", "TopicName", "LogGroupName", "StateMachineName", "RoleName", "AlarmName"];
        match resource.get("Properties").and_then(|p| keys.iter().find_map(|k| p.get(*k))) {
            Some(name) => scalar_text(&self.resolve(name)?),
            None => Ok(format!("{}-{logical_id}", self.names.stack_name)),
        }
    }

    pub fn arn(&self, logical_id: &str) -> Result<String, TemplateError> {
        let StackNames { region, account, .. } = &self.names;
        // SAM's implicit execution role of a function with policies (`<Function>Role`).
        if let Some(function) = logical_id.strip_suffix("Role")
            && self.resource_type(function).ok() == Some("AWS::Serverless::Function")
        {
            return Ok(format!("arn:aws:iam::{account}:role/{}-{logical_id}", self.names.stack_name));
        }
        let name = self.physical_name(logical_id)?;
        Ok(match self.resource_type(logical_id)? {
            "AWS::DynamoDB::Table" => format!("arn:aws:dynamodb:{region}:{account}:table/{name}"),
            "AWS::Serverless::Function" => format!("arn:aws:lambda:{region}:{account}:function:{name}"),
            "AWS::Serverless::StateMachine" => format!("arn:aws:states:{region}:{account}:stateMachine:{name}"),
            // Secrets Manager appends six random characters to a secret's name.
            "AWS::SecretsManager::Secret" => format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"),
            "AWS::Events::EventBus" => format!("arn:aws:events:{region}:{account}:event-bus/{name}"),
            "AWS::Events::Rule" => format!("arn:aws:events:{region}:{account}:rule/{name}"),
            "AWS::IAM::Role" => format!("arn:aws:iam::{account}:role/{name}"),
            "AWS::Logs::LogGroup" => format!("arn:aws:logs:{region}:{account}:log-group:{name}:*"),
            "AWS::SQS::Queue" => format!("arn:aws:sqs:{region}:{account}:{name}"),
            "AWS::SNS::Topic" => format!("arn:aws:sns:{region}:{account}:{name}"),
            "AWS::Scheduler::ScheduleGroup" => format!("arn:aws:scheduler:{region}:{account}:schedule-group/{name}"),
            other => return Err(invalid(format!("no ARN for {logical_id} ({other})"))),
        })
    }

    /// The partition key attribute of every table (by ARN) and global secondary index (by
    /// `<table ARN>/index/<name>`): what IAM's `dynamodb:LeadingKeys` names.
    pub fn partition_keys(&self) -> Result<BTreeMap<String, String>, TemplateError> {
        let hash = |schema: &Value| {
            schema
                .as_array()
                .into_iter()
                .flatten()
                .find(|k| k["KeyType"] == "HASH")
                .and_then(|k| k["AttributeName"].as_str())
                .map(str::to_string)
        };
        let mut out = BTreeMap::new();
        for logical_id in self.of_type("AWS::DynamoDB::Table") {
            let (arn, properties) = (self.arn(logical_id)?, self.properties(logical_id)?);
            out.extend(hash(&properties["KeySchema"]).map(|key| (arn.clone(), key)));
            for index in properties["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
                if let (Some(name), Some(key)) = (index["IndexName"].as_str(), hash(&index["KeySchema"])) {
                    out.insert(format!("{arn}/index/{name}"), key);
                }
            }
        }
        Ok(out)
    }

    /// Evaluates every intrinsic function in `value`.
    pub fn resolve(&self, value: &Value) -> Result<Value, TemplateError> {
        Ok(self.resolve_present(value)?.unwrap_or(Value::Null))
    }

    /// [`Template::resolve`], with `None` for `!Ref AWS::NoValue`: the list item or property it
    /// stands for is left out, as CloudFormation leaves it out.
    fn resolve_present(&self, value: &Value) -> Result<Option<Value>, TemplateError> {
        Ok(Some(match value {
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.resolve_present(v)).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect())
            }
            Value::Object(map) if map.len() == 1 => {
                let (key, argument) = map.iter().next().expect("one entry");
                match key.as_str() {
                    "Ref" => {
                        let name = scalar_text(argument)?;
                        if name == "AWS::NoValue" {
                            return Ok(None);
                        }
                        match self.parameters.get(&name) {
                            Some(list) if self.list_parameters.contains(&name) => {
                                Value::Array(list.split(',').map(|item| Value::String(item.trim().to_string())).collect())
                            }
                            _ => Value::String(self.pseudo_or_reference(&name)?),
                        }
                    }
                    "Fn::If" => {
                        let [condition, then, otherwise] = argument.as_array().map(Vec::as_slice).unwrap_or_default() else {
                            return Err(invalid(format!("!If {argument}")));
                        };
                        let chosen = if self.condition(&scalar_text(condition)?)? { then } else { otherwise };
                        return self.resolve_present(chosen);
                    }
                    "Fn::GetAtt" => {
                        let parts: Vec<String> = match argument {
                            Value::Array(parts) => parts.iter().map(scalar_text).collect::<Result<_, _>>()?,
                            other => return Err(invalid(format!("!GetAtt {other}"))),
                        };
                        let [resource, attribute] = parts.as_slice() else { return Err(invalid(format!("!GetAtt {parts:?}"))) };
                        Value::String(self.attribute(resource, attribute)?)
                    }
                    "Fn::Sub" => Value::String(self.substitute(argument)?),
                    "Fn::Join" => {
                        let resolved = self.resolve(argument)?;
                        let [separator, Value::Array(items)] = resolved.as_array().map(Vec::as_slice).unwrap_or_default() else {
                            return Err(invalid(format!("!Join {argument}")));
                        };
                        let items: Vec<String> = items.iter().map(scalar_text).collect::<Result<_, _>>()?;
                        Value::String(items.join(&scalar_text(separator)?))
                    }
                    name if name.starts_with("Fn::") => return Err(invalid(format!("{name} is not supported locally"))),
                    _ => Value::Object(Map::from_iter(self.resolve_present(argument)?.map(|v| (key.clone(), v)))),
                }
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, value) in map {
                    if let Some(value) = self.resolve_present(value)? {
                        out.insert(key.clone(), value);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }))
    }

    /// Whether the template's condition `name` holds for the stack's parameters.
    pub fn condition(&self, name: &str) -> Result<bool, TemplateError> {
        let declared = self.root.pointer(&format!("/Conditions/{name}")).ok_or_else(|| invalid(format!("no condition {name}")))?;
        self.holds(declared)
    }

    /// Evaluates a condition function (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`).
    fn holds(&self, value: &Value) -> Result<bool, TemplateError> {
        let Some((function, argument)) = value.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) else {
            return Err(invalid(format!("not a condition: {value}")));
        };
        let operands = || argument.as_array().ok_or_else(|| invalid(format!("{function} {argument}")));
        match function.as_str() {
            "Condition" => self.condition(&scalar_text(argument)?),
            "Fn::Equals" => match operands()?.as_slice() {
                [a, b] => Ok(self.resolve(a)? == self.resolve(b)?),
                _ => Err(invalid(format!("!Equals {argument}"))),
            },
            "Fn::Not" => match operands()?.as_slice() {
                [inner] => Ok(!self.holds(inner)?),
                _ => Err(invalid(format!("!Not {argument}"))),
            },
            "Fn::And" => operands()?.iter().try_fold(true, |all, c| Ok(all && self.holds(c)?)),
            "Fn::Or" => operands()?.iter().try_fold(false, |any, c| Ok(any || self.holds(c)?)),
            other => Err(invalid(format!("{other} is not a condition function"))),
        }
    }

    fn pseudo_or_reference(&self, name: &str) -> Result<String, TemplateError> {
        Ok(match name {
            "AWS::StackName" => self.names.stack_name.clone(),
            "AWS::Region" => self.names.region.clone(),
            "AWS::AccountId" => self.names.account.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            _ => self.reference(name)?,
        })
    }

    /// `!Sub "text ${Name} ${Resource.Attribute}"`, or `!Sub [text, {Name: value}]`.
    fn substitute(&self, argument: &Value) -> Result<String, TemplateError> {
        let (text, variables) = match argument {
            Value::String(text) => (text.as_str(), Map::new()),
            Value::Array(parts) => match parts.as_slice() {
                [Value::String(text), Value::Object(vars)] => (text.as_str(), vars.clone()),
                _ => return Err(invalid(format!("!Sub {argument}"))),
            },
            _ => return Err(invalid(format!("!Sub {argument}"))),
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| invalid(format!("!Sub {text}: unclosed ${{")))? + start;
            let name = &rest[start + 2..end];
            let value = match (variables.get(name), name.strip_prefix('!')) {
                (_, Some(literal)) => format!("${{{literal}}}"),
                (Some(value), _) => scalar_text(&self.resolve(value)?)?,
                (None, _) => match name.split_once('.') {
                    Some((resource, attribute)) if !name.starts_with("AWS::") => self.attribute(resource, attribute)?,
                    _ => self.pseudo_or_reference(name)?,
                },
            };
            out.push_str(&value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// SAM's Globals rule: maps merge key by key, lists are appended, anything else is replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (Value::Array(base), Value::Array(over)) => base.extend(over),
        (base, over) => *base = over,
    }
}

/// A resolved scalar as text (environment variables and substitutions are strings).
fn scalar_text(value: &Value) -> Result<String, TemplateError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(invalid(format!("expected a scalar, found {other}"))),
    }
}

/// YAML to CloudFormation's JSON form: `!Ref X` is `{"Ref": "X"}`, `!GetAtt A.B` is
/// `{"Fn::GetAtt": ["A", "B"]}`, any other `!Name v` is `{"Fn::Name": v}`.
fn to_json(node: &Yaml<'_>) -> Result<Value, TemplateError> {
    Ok(match node {
        Yaml::Value(scalar) => scalar_json(scalar),
        Yaml::Representation(text, style, tag) => match Scalar::parse_from_cow_and_metadata(text.clone(), *style, tag.as_ref()) {
            Some(scalar) => scalar_json(&scalar),
            None => return Err(invalid(format!("bad scalar {text}"))),
        },
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match to_json(key)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, to_json(value)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tag, inner) => {
            let inner = to_json(inner)?;
            match (tag.handle.as_str(), tag.suffix.as_str()) {
                ("!", "Ref") => json!({ "Ref": inner }),
                ("!", "GetAtt") => match &inner {
                    Value::String(path) => {
                        let (resource, attribute) = path.split_once('.').ok_or_else(|| invalid(format!("!GetAtt {path}")))?;
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    _ => json!({ "Fn::GetAtt": inner }),
                },
                ("!", name) => json!({ format!("Fn::{name}"): inner }),
                // Core-schema tags (`!!str`) keep the value.
                _ => inner,
            }
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err(invalid("aliases and bad values are not CloudFormation")),
    })
}

fn scalar_json(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => json!(i),
        Scalar::FloatingPoint(f) => json!(f.into_inner()),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn stack_template() -> Template {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml");
        let names = StackNames { stack_name: "dev".into(), region: "us-east-1".into(), account: "000000000000".into() };
        Template::load(&path, names, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn intrinsics_resolve_to_local_names() {
        let template = stack_template();
        let resolve = |yaml: &str| template.resolve(&to_json(&Yaml::load_from_str(yaml).unwrap()[0]).unwrap()).unwrap();
        assert_eq!(resolve("!Ref ReleaseTable"), json!("dev-ReleaseTable"));
        assert_eq!(resolve("!GetAtt ReleaseTable.Arn"), json!("arn:aws:dynamodb:us-east-1:000000000000:table/dev-ReleaseTable"));
        assert_eq!(
            resolve(r#"!Sub "${ReleaseTable.Arn}/index/*""#),
            json!("arn:aws:dynamodb:us-east-1:000000000000:table/dev-ReleaseTable/index/*")
        );
        assert_eq!(resolve(r#"!Sub "baton/slack/${AWS::StackName}-token""#), json!("baton/slack/dev-token"));
        assert_eq!(resolve("!Ref LogLevel"), json!("info"));
        assert_eq!(resolve(r#"!Sub ["${A}-${!B}", {A: !Ref AWS::Region}]"#), json!("us-east-1-${B}"));
    }

    #[test]
    fn functions_get_the_globals_and_their_own_settings() {
        let template = stack_template();
        let functions = template.functions().unwrap();
        assert_eq!(functions.len(), 10, "seven task functions, the GitHub webhook, Slack interactions and provider events");
        let health = functions.iter().find(|f| f.logical_id == "CheckHealthFunction").unwrap();
        assert_eq!((health.binary.as_str(), health.timeout, health.memory_mb), ("baton-check-health", Duration::from_secs(60), 256));
        let deploy = functions.iter().find(|f| f.logical_id == "DeployWaveFunction").unwrap();
        assert_eq!((deploy.binary.as_str(), deploy.timeout), ("baton-deploy-wave", Duration::from_secs(120)), "its own timeout wins");
        assert_eq!(health.environment["BATON_RELEASE_TABLE"], "dev-ReleaseTable");
        assert!(health.environment["BATON_PROVIDER_SECRET_ARN"].starts_with("arn:aws:secretsmanager:us-east-1:000000000000:secret:"));
        assert_eq!(health.log_format, "JSON");
    }

    #[test]
    fn the_definition_gets_the_templates_substitutions() {
        let definition = stack_template().state_machine_definition("ReleaseStateMachine").unwrap();
        assert!(!definition.contains("${"), "an unsubstituted placeholder is left");
        assert!(definition.contains("arn:aws:lambda:us-east-1:000000000000:function:dev-LoadCatalogFunction"));
    }
}
