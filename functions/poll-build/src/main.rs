//! The poll-build Lambda: the handler in lib.rs, served by the shared runtime glue. Its parked
//! tasks answer their own token through Step Functions when the build finished before the park.

use baton_aws::stepfunctions::SfnTaskTokens;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = baton_aws::sdk_config().await?;
    let tokens = SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config));
    let tokens: &dyn baton_domain::ports::TaskTokens = &tokens;
    baton_lambda_glue::serve(baton_poll_build::NAME, move |ports, payload| async move {
        baton_poll_build::handle(&ports, Some(tokens), payload).await
    })
    .await
}
