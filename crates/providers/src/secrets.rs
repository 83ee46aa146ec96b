//! Secret values and the resolver for `env:` references.

use async_trait::async_trait;
use baton_domain::catalog::SecretRef;
use baton_domain::ports::{ProviderError, SecretResolver};
use std::fmt;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// A resolved secret. It prints as `***` so it cannot reach a log line or an error by accident;
/// [`Secret::expose`] is the one, greppable, way to read it. Its value is remembered by
/// [`baton_domain::redact`], so it is masked in any text that leaves the process should a
/// command or a provider echo it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        baton_domain::redact::remember(&value);
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Resolves `reference` and wraps the value at once, so callers never hold it as a plain `String`.
pub async fn resolve_secret(resolver: &dyn SecretResolver, reference: &SecretRef) -> Result<Secret, ProviderError> {
    resolver.resolve(reference).await.map(Secret::new)
}

/// A secret resolved on first use and kept for the provider's life: the factory that builds
/// providers is synchronous, and resolving is not.
pub(crate) struct LazySecret {
    reference: SecretRef,
    resolver: Arc<dyn SecretResolver>,
    value: OnceCell<Secret>,
}

impl LazySecret {
    pub(crate) fn new(reference: SecretRef, resolver: Arc<dyn SecretResolver>) -> LazySecret {
        LazySecret { reference, resolver, value: OnceCell::new() }
    }

    /// The value, resolved on the first call; a failed resolution is tried again on the next.
    pub(crate) async fn get(&self) -> Result<&Secret, ProviderError> {
        self.value.get_or_try_init(|| resolve_secret(self.resolver.as_ref(), &self.reference)).await
    }

    /// What errors name instead of the value (`env:ARGOCD_TOKEN`).
    pub(crate) fn reference(&self) -> &SecretRef {
        &self.reference
    }
}

/// Reads `env:` secrets from this process's environment. SSM and Secrets Manager references
/// need AWS credentials and an SDK client: the Lambda functions resolve those with their own
/// resolver, and this one refuses them with a message that says so.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvSecretResolver;

#[async_trait]
impl SecretResolver for EnvSecretResolver {
    async fn resolve(&self, secret: &SecretRef) -> Result<String, ProviderError> {
        match secret {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(value) if value.trim().is_empty() => Err(ProviderError::rejected(format!("secret {secret} is set but empty"))),
                Ok(value) => Ok(value),
                Err(std::env::VarError::NotPresent) => {
                    Err(ProviderError::rejected(format!("secret {secret} is not set: export {name} in the environment that runs Baton")))
                }
                Err(std::env::VarError::NotUnicode(_)) => Err(ProviderError::rejected(format!("secret {secret} is not valid UTF-8"))),
            },
            SecretRef::Ssm(_) | SecretRef::SecretsManager(_) => Err(ProviderError::rejected(format!(
                "secret {secret} can only be resolved on AWS (by the Lambda functions' resolver); \
                 locally, use an env: reference"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret = Secret::new("xoxb-very-secret".into());
        assert_eq!(format!("{secret} {secret:?} {:?}", Some(&secret)), "*** *** Some(***)");
        assert_eq!(secret.expose(), "xoxb-very-secret");
    }

    #[tokio::test]
    async fn env_references_resolve_from_the_environment() {
        // A name no other test touches: the environment is shared by the test threads.
        let name = "BATON_PROVIDERS_TEST_SECRET_RESOLVE";
        // SAFETY: no other thread reads or writes this variable.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(name, "s3cr3t")
        };
        let value = EnvSecretResolver.resolve(&SecretRef::Env(name.into())).await.unwrap();
        assert_eq!(value, "s3cr3t");

        let missing = EnvSecretResolver.resolve(&SecretRef::Env("BATON_PROVIDERS_TEST_UNSET".into())).await;
        let Err(ProviderError::Rejected { message, .. }) = missing else { panic!("expected Rejected, got {missing:?}") };
        assert!(message.contains("env:BATON_PROVIDERS_TEST_UNSET is not set"), "{message}");
    }

    #[tokio::test]
    async fn aws_references_are_refused_locally() {
        for reference in [SecretRef::Ssm("/baton/slack".into()), SecretRef::SecretsManager("baton/slack".into())] {
            let result = EnvSecretResolver.resolve(&reference).await;
            let Err(ProviderError::Rejected { message, .. }) = result else { panic!("expected Rejected, got {result:?}") };
            assert!(message.contains(&reference.to_string()) && message.contains("only be resolved on AWS"), "{message}");
        }
    }
}
