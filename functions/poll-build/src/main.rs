//! The poll-build Lambda: the handler in lib.rs, served by the shared runtime glue. A parked task
//! answers its own token through Step Functions when what it waits for settled before the park.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let tokens = baton_lambda_glue::task_tokens().await?;
    baton_lambda_glue::serve(baton_poll_build::NAME, move |ports, payload| {
        let tokens = tokens.clone();
        async move { baton_poll_build::handle(&ports, Some(tokens.as_ref()), payload).await }
    })
    .await
}
