//! The record-metrics Lambda: the handler in lib.rs, served by the shared runtime glue.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    baton_lambda_glue::serve(
        baton_record_metrics::NAME,
        |ports, payload| async move { baton_record_metrics::handle(&ports, payload).await },
    )
    .await
}
