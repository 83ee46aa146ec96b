//! `baton approve`: a person answers the approval a release's wave waits for. Locally the answer
//! goes on the release record and the process running the release hands it to the waiting task
//! (its executor holds the token); with `--remote` it goes on the record in the release table and
//! straight to Step Functions (`SendTaskSuccess` / `SendTaskFailure`), as Slack's buttons do.
//! Who (the local user; the IAM principal with `--remote`), when, from where and why are recorded.

use crate::failure::{Failure, Outcome};
use crate::local::StateDirArg;
use baton_domain::approvals::{AnswerError, Answered, answer};
use baton_domain::ports::{ReleaseStore, TaskTokens};
use baton_domain::release::{ReleaseId, Verdict, Via};
use baton_domain::rules::approval::{self, Person};
use clap::Args;
use serde_json::json;

#[derive(Args)]
pub struct ApproveArgs {
    /// The release whose wave waits for approval (`baton show <release>` says which wave).
    pub release_id: String,
    /// Reject the wave instead: the release rolls back the waves that ran.
    #[arg(long)]
    pub reject: bool,
    /// Why: recorded on the release, its timeline and its Slack thread.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub state: StateDirArg,
    /// Print the answer as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Answer a release running on AWS, as the IAM principal of your credentials.
    #[arg(long)]
    pub remote: bool,
    /// The release table (with --remote; the stack's ReleaseTableName output).
    #[arg(long, env = "BATON_RELEASE_TABLE", requires = "remote")]
    pub table: Option<String>,
}

pub async fn run(args: ApproveArgs) -> Outcome {
    let verdict = if args.reject { Verdict::Rejected } else { Verdict::Granted };
    let reason = args.reason.as_deref().map(str::trim).filter(|reason| !reason.is_empty()).map(str::to_owned);
    let id = ReleaseId(args.release_id.clone());
    let answered = if args.remote {
        let Some(table) = args.table.as_deref() else {
            return Err(Failure::usage("--remote needs the release table")
                .hint("pass --table or set BATON_RELEASE_TABLE (the stack's ReleaseTableName output)"));
        };
        let config = match crate::remote::aws_config().await {
            Ok(config) => config,
            Err(err) => return Err(Failure::usage(&err).sources_of(&err)),
        };
        let identity = aws_sdk_sts::Client::new(&config).get_caller_identity().send().await;
        let principal = match identity.map(|identity| identity.arn) {
            Ok(Some(arn)) => arn,
            Ok(None) => return Err(Failure::failed("STS named no principal for these credentials")),
            Err(err) => {
                let err = baton_aws::AwsError::from_sdk("GetCallerIdentity", err);
                return Err(Failure::failed("cannot tell who you are on AWS").caused_by(&err));
            }
        };
        let store = baton_aws::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table);
        let tokens = baton_aws::stepfunctions::SfnTaskTokens::new(aws_sdk_sfn::Client::new(&config));
        answer_as(&store, Some(&tokens), &id, &Person::new(principal), verdict, reason).await
    } else {
        let store = crate::local::open_store(&args.state)?;
        answer_as(&store, None, &id, &Person::new(crate::person()), verdict, reason).await
    };
    match answered {
        Ok(answered) => {
            let line = approval::describe(&answered.wave, &answered.decision);
            if args.json {
                outln!("{}", json!({"release": answered.release.id, "wave": answered.wave, "decision": answered.decision}));
            } else if args.remote {
                outln!("{line}");
            } else {
                outln!("{line}\nthe process running {id} hands the answer to the waiting wave");
            }
            Ok(crate::exit::code(crate::exit::OK))
        }
        Err(AnswerError::Refused(refusal)) => Err(Failure::usage(format!("{refusal}; nothing was changed"))),
        Err(err @ AnswerError::NotDelivered(_)) => Err(Failure::failed(&err)),
        Err(err) => Err(Failure::failed("cannot record the answer").caused_by(&err)),
    }
}

async fn answer_as(
    store: &dyn ReleaseStore,
    tokens: Option<&dyn TaskTokens>,
    id: &ReleaseId,
    person: &Person,
    verdict: Verdict,
    reason: Option<String>,
) -> Result<Answered, AnswerError> {
    answer(store, tokens, id, person, verdict, Via::Cli, reason, chrono::Utc::now()).await
}
