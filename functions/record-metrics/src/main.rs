//! The record-metrics Lambda: the handler in lib.rs, served by the shared runtime glue, with
//! Step Functions' GetExecutionHistory to price each release.

use baton_aws::stepfunctions::SfnHistories;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = baton_aws::sdk_config().await?;
    // The request names the execution by its ARN, so no state machine ARN is needed.
    let histories = SfnHistories::new(aws_sdk_sfn::Client::new(&config), None);
    let histories = &histories;
    baton_lambda_glue::serve(baton_record_metrics::NAME, |ports, payload| async move {
        baton_record_metrics::handle(&ports, Some(histories), payload).await
    })
    .await
}
