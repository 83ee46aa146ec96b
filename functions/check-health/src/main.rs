//! The check-health Lambda: the handler in lib.rs, served by the shared runtime glue. Its parked
//! bakes answer their own token through Step Functions when an alarm fired before the park.

use baton_aws::stepfunctions::SfnTaskTokens;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = baton_aws::sdk_config().await?;
    let tokens = SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config));
    let tokens: &dyn baton_domain::ports::TaskTokens = &tokens;
    baton_lambda_glue::serve(baton_check_health::NAME, move |ports, payload| async move {
        baton_check_health::handle(&ports, Some(tokens), payload).await
    })
    .await
}
