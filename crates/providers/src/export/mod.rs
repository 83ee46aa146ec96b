//! Telemetry exporters: a release's events sent where the team already looks (Datadog's DORA
//! metrics and events; CloudWatch metrics as Embedded Metric Format log lines; an OpenTelemetry
//! trace per release). Each is best
//! effort within bounds its caller also enforces ([`baton_domain::telemetry::EXPORT_BUDGET`]):
//! a request gets [`EXPORT_REQUEST_TIMEOUT`], one more attempt after an outage, and a rate limit
//! longer than a couple of seconds is not waited for.

pub(crate) mod datadog;
pub(crate) mod emf;
pub(crate) mod otlp;

use crate::http::{Answer, RateLimits, exchange};
use baton_domain::catalog::{ProviderBlock, Slot};
use baton_domain::ports::ProviderError;
use baton_domain::retry::{Backoff, retry};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use std::time::Duration;

/// How long one export request may take: two attempts, the pause between them and a short
/// rate-limit wait stay within the export budget.
pub const EXPORT_REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// Attempts per request: the first, and one after an outage (no answer, 408 or 5xx).
const ATTEMPTS: u32 = 2;
/// The pause before the second attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Sends the request `build` makes through the shared rate-limit holds and answers the 2xx
/// answer; `refusal` turns any other answer into its error. An outage is tried once more; a
/// refusal or a rate limit is not (the holds keep the next export from sending too early).
pub(crate) async fn send_bounded(
    limits: &RateLimits,
    service: &str,
    build: impl Fn() -> RequestBuilder,
    timeout: Duration,
    context: &str,
    wait: impl Fn(&HeaderMap) -> Option<Duration> + Copy,
    refusal: impl Fn(&Answer) -> ProviderError,
) -> Result<Answer, ProviderError> {
    // Each failed attempt says whether it is worth another (an outage is; a refusal is not).
    let attempt = |_| async {
        match exchange(limits, service, &build, timeout, context, wait).await {
            Ok(answer) if answer.status.is_success() => Ok(answer),
            Ok(answer) => {
                let again = answer.status == StatusCode::REQUEST_TIMEOUT || answer.status.is_server_error();
                Err((refusal(&answer), again))
            }
            Err(err) => {
                let again = matches!(err, ProviderError::Unavailable { .. }) && err.rate_limit().is_none();
                Err((err, again))
            }
        }
    };
    let retryable = |(err, again): &(ProviderError, bool)| {
        if *again {
            tracing::debug!(target: "baton::export", error = %baton_domain::error::chain_text(err), "{context}: trying again");
        }
        *again
    };
    retry(Backoff::fixed(RETRY_PAUSE).attempts(ATTEMPTS), attempt, retryable).await.map_err(|(err, _)| err)
}

/// The environment variable holding the organisation's default exporters: a JSON list of
/// `telemetry` blocks, as a catalog entry writes them (`[{"provider": "datadog", "api-key":
/// "secrets-manager:baton/providers/datadog-api-key"}]`). Every service gets them; an exporter
/// its own `telemetry` names takes the default's fields it does not set.
pub const TELEMETRY_DEFAULTS_ENV: &str = "BATON_TELEMETRY_DEFAULTS";

/// Reads the default exporters from `text` (`origin` names where it came from, for errors):
/// each block must name a registered exporter and fit its shape, field for field, as a catalog's
/// `telemetry` block must. Errors never quote a value.
pub fn telemetry_defaults(text: &str, origin: &str) -> Result<Vec<ProviderBlock>, ProviderError> {
    let rejected = |why: String| ProviderError::rejected(format!("{origin}: {why}"));
    let blocks: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(text)
        .map_err(|_| rejected("expected a JSON list of telemetry blocks, each an object with a `provider`".into()))?;
    let exporters: Vec<&str> = crate::registry().providers(Slot::Export).map(|shape| shape.name).collect();
    let mut defaults: Vec<ProviderBlock> = Vec::new();
    for (i, mut settings) in blocks.into_iter().enumerate() {
        let Some(serde_json::Value::String(name)) = settings.remove("provider") else {
            return Err(rejected(format!("[{i}]: missing `provider`: expected one of {}", exporters.join(", "))));
        };
        let shape = crate::registry()
            .find(Slot::Export, &name)
            .ok_or_else(|| rejected(format!("[{i}].provider: unknown exporter `{name}`: expected one of {}", exporters.join(", "))))?;
        if let Some(unknown) = settings.keys().find(|key| !shape.fields.iter().any(|field| field.name == key.as_str())) {
            let known: Vec<&str> = shape.fields.iter().map(|field| field.name).collect();
            return Err(rejected(format!("[{i}].{unknown}: unknown field of `{name}`: expected one of {}", known.join(", "))));
        }
        let block = serde_json::Value::Object(settings);
        (shape.through_model)(&block).map_err(|_| {
            rejected(format!("[{i}]: the `{name}` block does not fit the exporter (check its required fields and their types)"))
        })?;
        if defaults.iter().any(|default| default.provider == name) {
            return Err(rejected(format!("[{i}]: `{name}` is listed twice")));
        }
        defaults.push(ProviderBlock::new(&name, block));
    }
    Ok(defaults)
}

/// The exporters of a service: each of its own blocks over the default of its exporter, field by
/// field (the service's fields win, the default's fill the rest: an organisation's `site`, say),
/// then each default whose exporter it does not name.
pub(crate) fn with_defaults(own: &[ProviderBlock], defaults: &[ProviderBlock]) -> Vec<ProviderBlock> {
    let merged = own.iter().map(|block| {
        let mut merged = defaults.iter().find(|default| default.provider == block.provider).cloned().unwrap_or_else(|| block.clone());
        merged.settings.extend(block.settings.clone());
        merged
    });
    let inherited = defaults.iter().filter(|default| !own.iter().any(|block| block.provider == default.provider)).cloned();
    merged.chain(inherited).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_checked_like_catalog_blocks_and_never_quote_a_value() {
        let ok = r#"[{"provider": "datadog", "api-key": "secrets-manager:baton/providers/dd", "site": "datadoghq.eu"},
                    {"provider": "cloudwatch-emf"}]"#;
        let defaults = telemetry_defaults(ok, "BATON_TELEMETRY_DEFAULTS").unwrap();
        assert_eq!(defaults.iter().map(|block| block.provider.as_str()).collect::<Vec<_>>(), ["datadog", "cloudwatch-emf"]);
        assert_eq!(defaults[0].text("site"), Some("datadoghq.eu"));
        let cases = [
            ("{}", "BATON_TELEMETRY_DEFAULTS: expected a JSON list of telemetry blocks"),
            (r#"[{"site": "x"}]"#, "[0]: missing `provider`: expected one of datadog, cloudwatch-emf, otlp"),
            (r#"[{"provider": "newrelic"}]"#, "[0].provider: unknown exporter `newrelic`"),
            (r#"[{"provider": "datadog", "api-key": "env:K", "apikey": "hunter2-SECRET"}]"#, "[0].apikey: unknown field of `datadog`"),
            (r#"[{"provider": "datadog", "api-key": "hunter2-SECRET"}]"#, "[0]: the `datadog` block does not fit the exporter"),
            (r#"[{"provider": "cloudwatch-emf"}, {"provider": "cloudwatch-emf"}]"#, "[1]: `cloudwatch-emf` is listed twice"),
        ];
        for (text, expected) in cases {
            let error = telemetry_defaults(text, "BATON_TELEMETRY_DEFAULTS").unwrap_err();
            assert!(matches!(error, ProviderError::Rejected { .. }) && error.message().contains(expected), "{text}: {error}");
            assert!(!error.message().contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn a_service_block_overrides_the_default_of_its_exporter_field_by_field() {
        let block = |provider: &str, namespace: &str| ProviderBlock::new(provider, serde_json::json!({ "namespace": namespace }));
        let own = [block("cloudwatch-emf", "Team")];
        let defaults = [block("datadog", "-"), block("cloudwatch-emf", "Org")];
        let merged = with_defaults(&own, &defaults);
        let merged: Vec<(&str, Option<&str>)> = merged.iter().map(|b| (b.provider.as_str(), b.text("namespace"))).collect();
        assert_eq!(merged, [("cloudwatch-emf", Some("Team")), ("datadog", Some("-"))]);
        // The organisation's site and key, the team's own key: the site is the organisation's.
        let org = ProviderBlock::new("datadog", serde_json::json!({ "api-key": "env:ORG_KEY", "site": "datadoghq.eu" }));
        let team = ProviderBlock::new("datadog", serde_json::json!({ "api-key": "env:TEAM_KEY" }));
        let merged = with_defaults(std::slice::from_ref(&team), std::slice::from_ref(&org));
        assert_eq!(merged.len(), 1);
        assert_eq!((merged[0].text("api-key"), merged[0].text("site")), (Some("env:TEAM_KEY"), Some("datadoghq.eu")));
        assert_eq!(with_defaults(std::slice::from_ref(&team), &[]), [team], "no default: the block as it is");
    }
}
