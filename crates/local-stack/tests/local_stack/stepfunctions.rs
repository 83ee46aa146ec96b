//! The stack's Step Functions endpoint answers its executions' task tokens as Step Functions
//! does, to the AWS SDK's own client: the waiting task gets the success or the failure sent, and
//! a token it never gave, one answered already or an output that is not JSON are refused with
//! AWS's errors.

use aws_sdk_sfn::config::{Credentials, Region};
use baton_asl::{Clock, ExecutionStart, ExecutionStatus, Executor, StateMachine, TaskCall, TaskFailure, TaskInvoker};
use baton_local_stack::stepfunctions::StepFunctions;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Hands each task's token to the test, as the approval's notify records it on the release.
struct TokensOut {
    step_functions: Arc<StepFunctions>,
    tokens: mpsc::UnboundedSender<String>,
}

#[async_trait::async_trait]
impl TaskInvoker for TokensOut {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let token = call.task_token.expect("a .waitForTaskToken task");
        self.step_functions.issued(&token);
        self.tokens.send(token).expect("the test listens");
        Ok(json!({}))
    }
}

const PARKED: &str = r#"{"StartAt": "Approve", "States": {"Approve": {"Type": "Task",
  "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
  "Parameters": {"FunctionName": "notify", "Payload": {"token.$": "$$.Task.Token"}}, "End": true}}}"#;

#[tokio::test]
async fn task_tokens_are_answered_and_refused_as_step_functions_does() {
    let step_functions = Arc::new(StepFunctions::serve().await.unwrap());
    let (sender, mut tokens) = mpsc::unbounded_channel();
    let executor = Executor::new(Arc::new(TokensOut { step_functions: step_functions.clone(), tokens: sender }), Clock::Virtual);
    step_functions.answer_tasks_of(&executor);
    let machine = Arc::new(StateMachine::from_json(PARKED).unwrap());
    let config = baton_local_stack::sdk_config().await.unwrap();
    let sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(&config)
            .endpoint_url(step_functions.url())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .build(),
    );

    let approved = executor.start(machine.clone(), ExecutionStart::new("approved", json!({})));
    let token = tokens.recv().await.unwrap();
    let never_given = sfn.send_task_success().task_token("not-a-token-of-this-stack").output("{}").send().await.unwrap_err();
    assert!(never_given.as_service_error().is_some_and(|e| e.is_invalid_token()), "{never_given:?}");
    let not_json = sfn.send_task_success().task_token(&token).output("approved").send().await.unwrap_err();
    assert!(not_json.as_service_error().is_some_and(|e| e.is_invalid_output()), "{not_json:?}");
    sfn.send_task_success().task_token(&token).output(r#"{"by": "U0ANN"}"#).send().await.unwrap();
    let outcome = approved.outcome().await;
    assert_eq!((outcome.status, outcome.output), (ExecutionStatus::Succeeded, Some(json!({"by": "U0ANN"}))));
    let again = sfn.send_task_success().task_token(&token).output("{}").send().await.unwrap_err();
    assert!(again.as_service_error().is_some_and(|e| e.is_task_does_not_exist()), "{again:?}");

    let rejected = executor.start(machine, ExecutionStart::new("rejected", json!({})));
    let token = tokens.recv().await.unwrap();
    sfn.send_task_failure().task_token(&token).error("Baton.ApprovalRejected").cause("rejected by U0ANN").send().await.unwrap();
    let outcome = rejected.outcome().await;
    assert_eq!(
        (outcome.status, outcome.error.as_deref(), outcome.cause.as_deref()),
        (ExecutionStatus::Failed, Some("Baton.ApprovalRejected"), Some("rejected by U0ANN"))
    );
    let again = sfn.send_task_failure().task_token(&token).error("Baton.ApprovalRejected").send().await.unwrap_err();
    assert!(again.as_service_error().is_some_and(|e| e.is_task_does_not_exist()), "{again:?}");
}
