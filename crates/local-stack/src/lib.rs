//! The AWS stack on one machine, without Docker: `infra/template.yaml`'s release state machine
//! (its definition with the template's `DefinitionSubstitutions`) on the embedded executor, each
//! Task invoking the real function binary through a local Lambda Runtime API ([`lambda`]),
//! with the environment, timeout and memory the template gives that function, against the
//! template's own tables on a local DynamoDB ([`tables`]), the catalog pushed there by
//! `baton catalog push`'s code. Step Functions' calls the functions make about the executions
//! are answered by the stack ([`stepfunctions`]); a function behind a function URL is called as
//! its URL would call it ([`function_url`]). Every AWS operation a function performs is recorded, and
//! [`iam`] checks the records against the template's policies.
//!
//! Endpoints and credentials come from the standard AWS environment (`AWS_ENDPOINT_URL*`);
//! [`LocalStack::up`] refuses any DynamoDB endpoint that is not on this machine.

pub mod function_url;
pub mod iam;
pub mod lambda;
pub mod logs;
pub mod stepfunctions;
pub mod tables;
pub mod template;

use aws_sdk_dynamodb::config::ProvideCredentials;
use baton_asl::{Clock, ExecutionHandle, ExecutionOutcome, ExecutionStart, Executor, StateMachine, TaskCall, TaskFailure, TaskInvoker};
use baton_aws::DynamoStore;
use baton_domain::catalog::CatalogLoader;
use baton_domain::error::chain_text;
use baton_domain::ports::ReleaseStore;
use baton_domain::release::{Release, ReleaseId};
use function_url::{UrlRequest, UrlResponse};
use iam::{Operation, PrincipalReport};
use lambda::{LambdaFunction, SandboxSettings};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use stepfunctions::StepFunctions;
use template::{StackNames, Template, TemplateError};

/// The state machine the stack runs, by logical id.
pub const STATE_MACHINE: &str = "ReleaseStateMachine";
/// The account the local ARNs carry (what LocalStack and moto use).
pub const LOCAL_ACCOUNT: &str = "000000000000";

/// What to run, where.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The SAM template (`infra/template.yaml`).
    pub template: PathBuf,
    /// Names every resource: tables are `<stack>-<LogicalId>`.
    pub stack_name: String,
    /// Where the function binaries are (`target/debug`).
    pub binaries: PathBuf,
    /// Function logs, working directories and operation records.
    pub state_dir: PathBuf,
    /// The catalog to push (a directory or one file).
    pub catalog: PathBuf,
    pub clock: Clock,
    /// Values of the template's parameters (`ArtifactBucket`, ...), as `sam deploy` would be given them.
    pub parameters: BTreeMap<String, String>,
    /// Variables the functions get besides the host's endpoints and credentials: an endpoint
    /// that reaches one service through something else (`AWS_ENDPOINT_URL_ECS`, a proxy).
    pub function_env: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Tables(#[from] tables::TableError),
    #[error("the local stack needs a DynamoDB on this machine: {0}")]
    NotLocal(String),
    #[error("{0}")]
    Setup(String),
    #[error("cannot push the catalog: {0}")]
    Catalog(String),
}

/// The stack, up: tables created, catalog pushed, functions ready to start on first call.
pub struct LocalStack {
    template: Template,
    machine: Arc<StateMachine>,
    executor: Executor,
    invoker: Arc<StackInvoker>,
    tables: Vec<(String, String)>,
    dynamodb: aws_sdk_dynamodb::Client,
    step_functions: Arc<StepFunctions>,
}

/// The SDK's configuration over an HTTPS client of its own: the process's shared client keeps
/// pooled connections that belong to the tokio runtime that opened them, and tests start a
/// runtime each (a connection left by an ended test's runtime fails the next one's call).
pub async fn sdk_config() -> Result<aws_config::SdkConfig, StackError> {
    let https = baton_http_client::Https::new(None).map_err(|e| StackError::Setup(e.to_string()))?;
    Ok(baton_aws::sdk_http::sdk_config_with(https).await)
}

impl LocalStack {
    pub async fn up(options: &StackOptions) -> Result<LocalStack, StackError> {
        require_local_dynamodb()?;
        let config = sdk_config().await?;
        let region = config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        let names = StackNames { stack_name: options.stack_name.clone(), region: region.clone(), account: LOCAL_ACCOUNT.into() };
        let template = Template::load(&options.template, names, &options.parameters)?;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let tables = tables::create_tables(&dynamodb, &template).await?;
        push_catalog(&dynamodb, &template, &options.catalog).await?;

        // The executions run here, so their histories are read and their task tokens answered here too.
        let step_functions =
            Arc::new(StepFunctions::serve().await.map_err(|e| StackError::Setup(format!("the executions' Step Functions endpoint: {e}")))?);
        let sfn_endpoint = ("AWS_ENDPOINT_URL_SFN".to_owned(), step_functions.url().to_owned());
        let settings = Arc::new(SandboxSettings {
            binaries: options.binaries.clone(),
            state_dir: options.state_dir.clone(),
            region,
            passthrough: passthrough(&config)
                .await?
                .into_iter()
                .chain(std::iter::once(sfn_endpoint))
                .chain(options.function_env.iter().cloned())
                .collect(),
        });
        let functions = template
            .functions()?
            .into_iter()
            .map(|spec| (spec.arn.clone(), Arc::new(LambdaFunction::new(spec, settings.clone()))))
            .collect();
        let invoker = Arc::new(StackInvoker { functions, invoked: Mutex::default(), step_functions: step_functions.clone() });
        let definition = template.state_machine_definition(STATE_MACHINE)?;
        let machine = StateMachine::from_json(&definition).map_err(|e| StackError::Setup(format!("{STATE_MACHINE}: {e}")))?;
        let executor = Executor::new(invoker.clone(), options.clock);
        step_functions.answer_tasks_of(&executor);
        Ok(LocalStack { template, machine: Arc::new(machine), executor, invoker, tables, dynamodb, step_functions })
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The created tables: (logical id, name).
    pub fn tables(&self) -> &[(String, String)] {
        &self.tables
    }

    pub fn functions(&self) -> impl Iterator<Item = &LambdaFunction> {
        self.invoker.functions.values().map(Arc::as_ref)
    }

    /// Runs one execution of the release state machine to its end.
    pub async fn run(&self, execution_name: &str, input: Value) -> ExecutionOutcome {
        self.start(execution_name, input).outcome().await
    }

    /// Starts one execution of the release state machine (its handle stops it as StopExecution does).
    pub fn start(&self, execution_name: &str, input: Value) -> ExecutionHandle {
        let names = self.template.names();
        // The execution's ARN in the stack's region and account, as the functions' grants name it.
        let start = ExecutionStart {
            state_machine_name: format!("{}-{STATE_MACHINE}", names.stack_name),
            region: names.region.clone(),
            account_id: names.account.clone(),
            ..ExecutionStart::new(execution_name, input)
        };
        let handle = self.executor.start(self.machine.clone(), start);
        self.step_functions.add(handle.execution_arn(), handle.history_reader());
        handle
    }

    /// Calls the function `logical_id` through its function URL (`FunctionUrlConfig`), as a
    /// person's tool (Slack) would: the URL's event in, the URL's HTTP response out.
    pub async fn call_function_url(&self, logical_id: &str, request: &UrlRequest) -> Result<UrlResponse, StackError> {
        if self.template.properties(logical_id)?.get("FunctionUrlConfig").is_none() {
            return Err(StackError::Setup(format!("{logical_id} has no FunctionUrlConfig in the template")));
        }
        let function = self
            .functions()
            .find(|f| f.spec().logical_id == logical_id)
            .ok_or_else(|| StackError::Setup(format!("{logical_id} is not a function of the template")))?;
        let spec = function.spec();
        // With AutoPublishAlias, SAM puts the URL on the alias.
        let invoked = match &spec.alias {
            Some(alias) => format!("{}:{alias}", spec.arn),
            None => spec.arn.clone(),
        };
        let event = function_url::event(request, &uuid::Uuid::new_v4().to_string());
        Ok(function_url::response(function.invoke(&invoked, &event).await))
    }

    /// The release an execution carried, read back from the stack's release table (its
    /// `ReleaseTableName` output): the one its output names, else the service's newest.
    pub async fn release(&self, service: &str, outcome: &ExecutionOutcome) -> Result<Option<Release>, StackError> {
        let store = self.release_store()?;
        let named = outcome.output.as_ref().and_then(|o| o.pointer("/release/id")).and_then(Value::as_str);
        let found = match named {
            Some(id) => store.get_release(&ReleaseId(id.to_string())).await,
            None => store.list_releases(service, None, 1).await.map(|releases| releases.into_iter().next()),
        };
        found.map_err(|e| StackError::Setup(format!("the release table: {}", chain_text(&e))))
    }

    /// The stack's release table (its `ReleaseTableName` output), as the functions and the CLI's
    /// remote commands read it.
    pub fn release_store(&self) -> Result<DynamoStore, StackError> {
        Ok(DynamoStore::new(self.dynamodb.clone(), self.template.output("ReleaseTableName")?))
    }

    /// The operations each principal performed so far, by logical id: the functions' records
    /// and the state machine's Lambda invocations.
    pub fn operations(&self) -> Result<BTreeMap<String, BTreeSet<Operation>>, StackError> {
        let names = self.template.names();
        let hash_keys = self.template.partition_keys()?;
        let state_machine = self.template.reference(STATE_MACHINE)?;
        let mut out = BTreeMap::new();
        for function in self.functions() {
            let text = match std::fs::read_to_string(function.operations_file()) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StackError::Setup(format!("{}: {e}", function.operations_file().display()))),
            };
            let operations = iam::read_operations(&text, &names.region, &names.account);
            out.insert(
                function.spec().logical_id.clone(),
                operations
                    .into_iter()
                    .map(|op| stepfunctions::with_token_machine(iam::with_leading_keys(op, &hash_keys), &state_machine))
                    .collect(),
            );
        }
        out.insert(STATE_MACHINE.to_string(), self.invoker.invoked.lock().unwrap_or_else(|p| p.into_inner()).clone());
        Ok(out)
    }

    /// The IAM check of every principal that ran (see [`iam::check`]).
    pub fn iam_reports(&self) -> Result<BTreeMap<String, PrincipalReport>, StackError> {
        self.operations()?.iter().map(|(principal, ops)| Ok((principal.clone(), iam::check(&self.template, principal, ops)?))).collect()
    }

    /// Stops the warm environments.
    pub fn shutdown(&self) {
        self.functions().for_each(LambdaFunction::shutdown);
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The Tasks' invoker: the function the (qualified) ARN names, in its local environments.
struct StackInvoker {
    /// By unqualified function ARN.
    functions: BTreeMap<String, Arc<LambdaFunction>>,
    /// The state machine's `lambda:InvokeFunction` calls, for the IAM check.
    invoked: Mutex<BTreeSet<Operation>>,
    /// Told the task tokens the tasks are given, which it answers.
    step_functions: Arc<StepFunctions>,
}

#[async_trait::async_trait]
impl TaskInvoker for StackInvoker {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let target = call.function.as_deref().unwrap_or(&call.resource);
        if let Some(token) = &call.task_token {
            self.step_functions.issued(token);
        }
        self.invoked.lock().unwrap_or_else(|p| p.into_inner()).insert(Operation::new("lambda:InvokeFunction", target));
        // `...:function:<name>[:<alias or version>]`
        let (unqualified, qualifier) = match target.match_indices(':').nth(6) {
            Some((at, _)) => (&target[..at], Some(&target[at + 1..])),
            None => (target, None),
        };
        let function = self.functions.get(unqualified).filter(|f| match qualifier {
            None | Some("$LATEST") => true,
            Some(qualifier) => f.spec().alias.as_deref() == Some(qualifier),
        });
        let Some(function) = function else {
            return Err(TaskFailure::new("Lambda.ResourceNotFoundException", format!("Function not found: {target}")));
        };
        function.invoke(target, &call.payload).await
    }
}

/// Pushes `catalog` to the stack's catalog table (its `CatalogTableName` output) with the code
/// `baton catalog push` runs.
async fn push_catalog(client: &aws_sdk_dynamodb::Client, template: &Template, catalog: &Path) -> Result<(), StackError> {
    let table = template.output("CatalogTableName")?;
    // Absolute: the functions resolve `working-dir`s against the file the item came from.
    let path = std::path::absolute(catalog).map_err(|e| StackError::Catalog(format!("{}: {e}", catalog.display())))?;
    // Not the cloud loader: the stack's functions run on this machine, so local commands work.
    let loader = CatalogLoader::new(baton_providers::registry());
    let loaded = loader.load_with_env_root(&path).map_err(|e| StackError::Catalog(format!("{}: {e}", path.display())))?;
    if let Some(first) = loaded.diagnostics().first() {
        return Err(StackError::Catalog(format!("{first} (and {} more)", loaded.diagnostics().len() - 1)));
    }
    let items = baton_aws::catalog::loaded_catalog_items(&loader, &loaded).map_err(|e| StackError::Catalog(e.to_string()))?;
    baton_aws::catalog::push_catalog(client, &table, &items).await.map_err(|e| StackError::Catalog(e.to_string()))
}

/// Creating tables on real AWS by accident would cost money and leave them behind.
fn require_local_dynamodb() -> Result<(), StackError> {
    let (variable, url) = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok().map(|url| (*v, url)))
        .ok_or_else(|| StackError::NotLocal("set AWS_ENDPOINT_URL_DYNAMODB (e.g. http://127.0.0.1:8000, DynamoDB Local)".into()))?;
    let host = url.strip_prefix("http://").unwrap_or_default().split([':', '/']).next().unwrap_or_default();
    if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        Ok(())
    } else {
        Err(StackError::NotLocal(format!("{variable}={url} is not an http:// endpoint on this machine")))
    }
}

/// What the functions get from the host: the endpoints (which Lambda would not need) and the
/// credentials the stack itself uses, as Lambda hands its execution role's keys to a function.
/// The same keys matter: DynamoDB Local keeps one database per access key unless `-sharedDb`.
async fn passthrough(config: &aws_config::SdkConfig) -> Result<Vec<(String, String)>, StackError> {
    let mut env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("AWS_ENDPOINT_URL")).collect();
    let provider = config
        .credentials_provider()
        .ok_or_else(|| StackError::Setup("no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".into()))?;
    let credentials = provider.provide_credentials().await.map_err(|e| StackError::Setup(format!("AWS credentials: {e}")))?;
    env.push(("AWS_ACCESS_KEY_ID".into(), credentials.access_key_id().into()));
    env.push(("AWS_SECRET_ACCESS_KEY".into(), credentials.secret_access_key().into()));
    if let Some(token) = credentials.session_token() {
        env.push(("AWS_SESSION_TOKEN".into(), token.into()));
    }
    Ok(env)
}
