//! Lambda function URL requests and responses (payload format 2.0), for the functions people's
//! tools call over HTTPS: the GitHub webhook and Slack's interactivity requests.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A Lambda function URL request; only what the functions read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlRequest {
    /// Header names arrive lower-cased.
    #[serde(default)]
    pub headers: HashMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub is_base64_encoded: bool,
}

impl FunctionUrlRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body as it was sent, decoded from base64 when flagged so; refused (413) past
    /// `max_bytes` before any decoding or signature check, or (400) when it is not base64.
    pub fn body_bytes(&self, max_bytes: usize) -> Result<Vec<u8>, FunctionUrlResponse> {
        let raw = self.body.as_deref().unwrap_or_default();
        // Base64 takes 4 characters for 3 bytes: the bound applies to what decoding would give.
        let body_bytes = if self.is_base64_encoded { raw.len() / 4 * 3 } else { raw.len() };
        if body_bytes > max_bytes {
            return Err(FunctionUrlResponse::message(413, format!("body of {body_bytes} bytes is over the limit of {max_bytes} bytes")));
        }
        if !self.is_base64_encoded {
            return Ok(raw.as_bytes().to_vec());
        }
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| FunctionUrlResponse::message(400, "body is flagged base64 but is not valid base64"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionUrlResponse {
    pub status_code: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl FunctionUrlResponse {
    pub fn json(status_code: u16, body: serde_json::Value) -> FunctionUrlResponse {
        FunctionUrlResponse {
            status_code,
            headers: HashMap::from([("content-type".to_string(), "application/json".to_string())]),
            body: body.to_string(),
        }
    }

    /// `{"message": ...}`.
    pub fn message(status_code: u16, message: impl Into<String>) -> FunctionUrlResponse {
        FunctionUrlResponse::json(status_code, serde_json::json!({ "message": message.into() }))
    }
}
