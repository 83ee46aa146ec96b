//! The trigger-build Lambda: the handler in lib.rs, served by the shared runtime glue.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_lambda_glue::serve(baton_trigger_build::NAME, |ports, payload| async move { baton_trigger_build::handle(&ports, payload).await })
        .await
}
