//! One error type for every AWS call this crate makes, split the way callers act on it:
//! retry (`Unavailable`) or give up and report (`Rejected`, `Unexpected`).

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use baton_domain::error::chain_text;
use baton_domain::ports::ProviderError;
use std::fmt::Debug;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// Network failure, timeout, throttling or a 5xx: worth retrying.
    #[error("{operation} failed, AWS unavailable: {message}")]
    Unavailable { operation: &'static str, message: String },
    /// AWS refused the request (missing resource, validation, permissions): retrying will not help.
    #[error("{operation} rejected by AWS ({code}): {message}")]
    Rejected { operation: &'static str, code: String, message: String },
    /// AWS answered something this crate cannot use (a missing field, unreadable JSON).
    #[error("{operation} returned an unexpected answer: {message}")]
    Unexpected { operation: &'static str, message: String },
}

/// Error codes AWS documents as throttling or server-side trouble, across the services we call.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalServerException",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    // The 5xx of ECS, Lambda and CloudWatch, named their own way.
    "ServerException",
    "ServiceException",
    "InternalServiceFault",
];

impl AwsError {
    /// Classifies any SDK error (all AWS SDK crates share `SdkError`).
    pub fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: Debug,
    {
        match &err {
            SdkError::ServiceError(service) => {
                let inner = service.err();
                let code = inner.code().unwrap_or("Unknown").to_string();
                let message = inner.message().map(str::to_string).unwrap_or_else(|| inner.to_string());
                if TRANSIENT_CODES.contains(&code.as_str()) {
                    AwsError::Unavailable { operation, message: format!("{code}: {message}") }
                } else {
                    AwsError::Rejected { operation, code, message }
                }
            }
            // Timeouts, connection failures and unparseable responses: the request may not have
            // reached AWS or its answer was lost, so a retry is the right move.
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                AwsError::Unavailable { operation, message: chain_text(&err) }
            }
            // Construction failures are bugs or bad configuration (no region, bad endpoint URL).
            _ => AwsError::Rejected { operation, code: "ClientError".into(), message: chain_text(&err) },
        }
    }

    pub fn unexpected(operation: &'static str, message: impl Into<String>) -> AwsError {
        AwsError::Unexpected { operation, message: message.into() }
    }

    /// As a provider's error, `context` saying what was being done ("ECS service web in prod"):
    /// unavailable stays retryable; a refusal or an unusable answer will not get better by retrying.
    pub fn for_provider(self, context: &str) -> ProviderError {
        match self {
            AwsError::Unavailable { .. } => ProviderError::unavailable(context).caused_by(self),
            AwsError::Rejected { .. } | AwsError::Unexpected { .. } => ProviderError::rejected(context).caused_by(self),
        }
    }

    /// The AWS error code, when AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }
}
