//! The deploy-wave Lambda: the handler in lib.rs, served by the shared runtime glue.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_lambda_glue::serve(baton_deploy_wave::NAME, |ports, payload| async move { baton_deploy_wave::handle(&ports, payload).await })
        .await
}
