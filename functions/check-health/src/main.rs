//! The check-health Lambda: the handler in lib.rs, served by the shared runtime glue.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_lambda_glue::serve(baton_check_health::NAME, |ports, payload| async move { baton_check_health::handle(&ports, payload).await })
        .await
}
