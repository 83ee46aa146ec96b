//! SDK configurations per [`AwsAccess`]: the process's base configuration with a target's region
//! and, when it names a role, credentials of that role (assumed through STS, refreshed before
//! they expire). Deploy targets and health gates in other regions and accounts go through here.

use crate::error::AwsError;
use crate::sdk_http::sdk_config;
use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_dynamodb::config::{Region, SharedCredentialsProvider};

use baton_domain::ports::ProviderError;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell};

/// The session name of every assumed role: it shows in the target account's CloudTrail as
/// `assumed-role/<role>/baton`. One name per process keeps one cached session per role.
const SESSION_NAME: &str = "baton";

/// A configuration's key: (region, role ARN), as the catalog gives them.
type AccessKey = (Option<String>, Option<String>);

/// Cheap to clone (one `Arc`); clones share the base configuration and the per-access cache.
#[derive(Clone, Default)]
pub struct AwsClients {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Loaded on first use: building an `AwsClients` does no I/O (the provider factory is sync).
    base: OnceCell<SdkConfig>,
    /// By (region, role), for the process: an assumed role's credentials are cached (and
    /// refreshed) by the configuration's identity cache, so reusing it saves an AssumeRole per call.
    by_access: Mutex<HashMap<AccessKey, SdkConfig>>,
    /// The account of the base credentials, asked of STS once per process.
    own_account: OnceCell<String>,
}

impl std::fmt::Debug for AwsClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsClients").field("loaded", &self.inner.base.initialized()).finish_non_exhaustive()
    }
}

impl AwsClients {
    /// Configurations derived from [`sdk_config`] (the standard chain over the shared HTTPS client).
    pub fn new() -> AwsClients {
        AwsClients::default()
    }

    /// Configurations derived from `base` instead (tests give one over a client of their own).
    pub fn with_base(base: SdkConfig) -> AwsClients {
        AwsClients { inner: Arc::new(Inner { base: OnceCell::new_with(Some(base)), ..Inner::default() }) }
    }

    async fn base(&self) -> Result<&SdkConfig, ProviderError> {
        self.inner
            .base
            .get_or_try_init(|| async {
                sdk_config().await.map_err(|err| ProviderError::rejected("cannot build the AWS SDK's HTTPS client").caused_by(err))
            })
            .await
    }

    /// The configuration for `access`: its region (else the base one) and its role (else the
    /// base credentials). No call to AWS here; the role is assumed on the first request.
    pub async fn config_for(&self, access: &AwsAccess) -> Result<SdkConfig, ProviderError> {
        let base = self.base().await?;
        let key: AccessKey = (access.region.clone(), access.role_arn.clone());
        let mut cache = self.inner.by_access.lock().await;
        if let Some(config) = cache.get(&key) {
            return Ok(config.clone());
        }
        // The base's timeouts ([`sdk_config`]) bound the target's calls too.
        let mut builder = base.to_builder();
        if let Some(region) = &access.region {
            builder.set_region(Some(Region::new(region.clone())));
        }
        if let Some(role) = &access.role_arn {
            // STS is called with the base configuration (this process's own credentials, region
            // and endpoint), as the role's trust policy expects the caller's account.
            let provider = AssumeRoleProvider::builder(role.clone()).session_name(SESSION_NAME).configure(base).build().await;
            builder.set_credentials_provider(Some(SharedCredentialsProvider::new(provider)));
        }
        let config = builder.build();
        if config.region().is_none() {
            return Err(ProviderError::rejected("no AWS region: set the target's region in the catalog, or AWS_REGION for Baton"));
        }
        cache.insert(key, config.clone());
        Ok(config)
    }
}

impl AwsClients {
    /// The account whose resources `access` reaches: its role's (read from the role's ARN, no
    /// call), else the process's own credentials' (STS GetCallerIdentity, once per process; it
    /// needs no permission).
    pub async fn account_of(&self, access: &AwsAccess) -> Result<String, ProviderError> {
        if let Some(role) = &access.role_arn {
            return account_in_arn(role).map(str::to_owned).ok_or_else(|| {
                ProviderError::rejected(format!("role-arn {role:?} names no account: expected arn:aws:iam::<12-digit account>:role/<name>"))
            });
        }
        let base = self.base().await?;
        let account = self
            .inner
            .own_account
            .get_or_try_init(|| async {
                let identity = aws_sdk_sts::Client::new(base)
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("GetCallerIdentity", e).for_provider("cannot tell Baton's own AWS account"))?;
                identity.account.ok_or_else(|| ProviderError::unavailable("STS GetCallerIdentity named no account"))
            })
            .await?;
        Ok(account.clone())
    }
}

/// The account field of an ARN (`arn:partition:service:region:account:resource`), when it is one.
fn account_in_arn(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (arn.starts_with("arn:") && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// The region a configuration from [`AwsClients::config_for`] calls (it always has one).
pub(crate) fn region_of(config: &SdkConfig) -> String {
    config.region().map(|r| r.to_string()).unwrap_or_default()
}

/// An SDK timestamp as the domain keeps times; one outside chrono's range (none an AWS API
/// sends) reads as the epoch.
pub(crate) fn to_chrono(at: &aws_smithy_types::DateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default()
}

// ------------------------------------------------------------------ catalog block

use baton_domain::catalog::shape::{Field, Kind, Shape, field, required, shape};

/// Where AWS calls go: a region and an IAM role to assume, both optional (the process's own
/// region and credentials otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AwsAccess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// One target's own region and role, for waves that cross regions and accounts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Placement {
    pub target: String,
    #[serde(flatten)]
    pub access: AwsAccess,
}

/// The AWS access of `target`: its placement's fields, else the block's.
pub fn access_for(target: &str, default: &AwsAccess, placements: &[Placement]) -> AwsAccess {
    let placed = placements.iter().find(|p| p.target == target).map(|p| &p.access);
    AwsAccess {
        region: placed.and_then(|a| a.region.clone()).or_else(|| default.region.clone()),
        role_arn: placed.and_then(|a| a.role_arn.clone()).or_else(|| default.role_arn.clone()),
    }
}

pub const REGION: Field = field("region", Kind::Text, "AWS region of the calls (the process's region by default).");
pub const ROLE_ARN: Field = field("role-arn", Kind::Text, "IAM role assumed for the calls (another account's, say).");

const PLACEMENT: Shape = shape(&[
    required("target", Kind::WaveTarget, "A target of the waves."),
    field("region", Kind::Text, "The target's region, instead of the block's."),
    field("role-arn", Kind::Text, "The role assumed for this target, instead of the block's."),
]);
pub const PLACEMENTS: Field =
    field("placements", Kind::List(&PLACEMENT), "Targets in other regions or accounts: their own `region` and `role-arn`.");

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_config::BehaviorVersion;
    use aws_sdk_dynamodb::config::Credentials;

    /// Loaded as the real one is (the assume-role provider needs its time source), without I/O.
    /// A base configuration in us-east-1 with static credentials: no call leaves the process.
    pub(crate) async fn base() -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDBASE", "secret", None, None, "test"))
            .load()
            .await
    }

    #[tokio::test]
    async fn a_region_overrides_the_base_and_configurations_are_reused() {
        let clients = AwsClients::with_base(base().await);
        let plain = clients.config_for(&AwsAccess::default()).await.unwrap();
        assert_eq!(region_of(&plain), "us-east-1");
        let access = AwsAccess { region: Some("eu-west-1".into()), role_arn: None };
        let west = clients.config_for(&access).await.unwrap();
        assert_eq!(region_of(&west), "eu-west-1");
        assert_eq!(clients.inner.by_access.lock().await.len(), 2);
        // A clone shares the cache.
        clients.clone().config_for(&access).await.unwrap();
        assert_eq!(clients.inner.by_access.lock().await.len(), 2);
    }

    #[tokio::test]
    async fn a_role_replaces_the_base_credentials() {
        let clients = AwsClients::with_base(base().await);
        let access = AwsAccess { region: None, role_arn: Some("arn:aws:iam::210987654321:role/deployer".into()) };
        let config = clients.config_for(&access).await.unwrap();
        // Its Debug text is the one window on the provider without calling STS (the emulator
        // tests do: a placement's role deploys into that account).
        let provider = format!("{:?}", config.credentials_provider().expect("a credentials provider"));
        assert!(provider.starts_with("SharedCredentialsProvider(AssumeRoleProvider"), "{provider}");
        assert!(provider.contains(r#"role_arn: Some("arn:aws:iam::210987654321:role/deployer")"#), "{provider}");
        assert!(provider.contains(r#"role_session_name: Some("baton")"#), "{provider}");
    }

    #[tokio::test]
    async fn a_role_s_account_is_read_from_its_arn_without_a_call() {
        let clients = AwsClients::with_base(base().await);
        let role = |arn: &str| AwsAccess { region: None, role_arn: Some(arn.into()) };
        assert_eq!(clients.account_of(&role("arn:aws:iam::210987654321:role/deployer")).await.unwrap(), "210987654321");
        assert_eq!(clients.account_of(&role("arn:aws-cn:iam::210987654321:role/a/b")).await.unwrap(), "210987654321");
        for bad in ["deployer", "arn:aws:iam::2109:role/deployer", "arn:aws:iam::21098765432x:role/deployer"] {
            match clients.account_of(&role(bad)).await {
                Err(ProviderError::Rejected { message, .. }) => assert!(message.contains("names no account"), "{message}"),
                other => panic!("{bad}: expected Rejected, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn no_region_anywhere_is_rejected_saying_where_to_set_one() {
        let clients = AwsClients::with_base(SdkConfig::builder().behavior_version(BehaviorVersion::latest()).build());
        match clients.config_for(&AwsAccess::default()).await {
            Err(ProviderError::Rejected { message, .. }) => assert!(message.contains("AWS_REGION"), "{message}"),
            other => panic!("expected Rejected, got {other:?}"),
        }
    }
}
