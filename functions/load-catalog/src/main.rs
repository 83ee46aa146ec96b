//! The load-catalog Lambda: the handler in lib.rs, served by the shared runtime glue.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_lambda_glue::serve(baton_load_catalog::NAME, |ports, payload| async move { baton_load_catalog::handle(&ports, payload).await })
        .await
}
