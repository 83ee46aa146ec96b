//! Lambda function URLs (payload format 2.0): an HTTP request to a function behind one becomes the
//! event Lambda hands the function, and the function's result the HTTP response Lambda sends back.

use base64::Engine;
use baton_asl::TaskFailure;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// An HTTP request to a function URL.
#[derive(Debug, Clone)]
pub struct UrlRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the function URL answered.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// The event Lambda builds for `request`: header names lower-cased (repeated ones joined by
/// commas), and a body of any but a text media type base64-encoded, as Slack's form posts arrive.
pub fn event(request: &UrlRequest, request_id: &str) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &request.headers {
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|joined| *joined = format!("{joined},{value}"))
            .or_insert_with(|| value.clone());
    }
    let textual = headers.get("content-type").is_some_and(|media| is_text(media));
    let body = match textual {
        true => String::from_utf8_lossy(&request.body).into_owned(),
        false => base64::engine::general_purpose::STANDARD.encode(&request.body),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let user_agent = headers.get("user-agent").cloned().unwrap_or_default();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": now,
            "http": { "method": request.method, "path": request.path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": user_agent },
        },
        "body": body,
        "isBase64Encoded": !textual,
    })
}

/// Text media types, which Lambda passes as they are.
fn is_text(media: &str) -> bool {
    let media = media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || ["application/json", "application/xml", "application/javascript"].contains(&media.as_str())
}

/// The HTTP response for the function's result: an object with a `statusCode` is the response
/// itself; any other result is a 200 whose JSON body it is; a failed invocation is a 502.
pub fn response(result: Result<Value, TaskFailure>) -> UrlResponse {
    let json_headers = || BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]);
    let result = match result {
        Ok(result) => result,
        Err(_) => {
            return UrlResponse { status: 502, headers: json_headers(), body: json!({"Message": "Internal Server Error"}).to_string() };
        }
    };
    let Some(status) = result.get("statusCode").and_then(Value::as_u64) else {
        return UrlResponse { status: 200, headers: json_headers(), body: result.to_string() };
    };
    let headers = result
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| Some((name.to_ascii_lowercase(), value.as_str()?.to_owned())))
        .collect();
    let body = result.get("body").and_then(Value::as_str).unwrap_or_default();
    let base64 = result.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false);
    let body = match base64 {
        true => {
            base64::engine::general_purpose::STANDARD.decode(body).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
        }
        false => body.to_owned(),
    };
    UrlResponse { status: u16::try_from(status).unwrap_or(502), headers, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_arrive_base64_and_json_bodies_as_text() {
        let request = |media: &str| UrlRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: vec![("Content-Type".into(), media.into()), ("X-Tag".into(), "a".into()), ("x-tag".into(), "b".into())],
            body: b"payload=%7B%7D".to_vec(),
        };
        let form = event(&request("application/x-www-form-urlencoded"), "r-1");
        assert_eq!((form["isBase64Encoded"].as_bool(), form["body"].as_str()), (Some(true), Some("cGF5bG9hZD0lN0IlN0Q=")));
        assert_eq!(form["headers"]["x-tag"], "a,b");
        let text = event(&request("application/json; charset=utf-8"), "r-2");
        assert_eq!((text["isBase64Encoded"].as_bool(), text["body"].as_str()), (Some(false), Some("payload=%7B%7D")));
    }

    #[test]
    fn results_become_responses_as_lambda_maps_them() {
        let shaped =
            response(Ok(json!({"statusCode": 401, "headers": {"Content-Type": "application/json"}, "body": "{\"message\":\"no\"}"})));
        assert_eq!(
            (shaped.status, shaped.body.as_str(), shaped.headers["content-type"].as_str()),
            (401, "{\"message\":\"no\"}", "application/json")
        );
        let encoded = response(Ok(json!({"statusCode": 200, "body": "aGk=", "isBase64Encoded": true})));
        assert_eq!((encoded.status, encoded.body.as_str()), (200, "hi"));
        let bare = response(Ok(json!({"ok": true})));
        assert_eq!((bare.status, bare.body.as_str()), (200, "{\"ok\":true}"));
        assert_eq!(response(Err(TaskFailure::new("Runtime.ExitError", "boom"))).status, 502);
    }
}
