//! The GraphQL Admin API's envelope: `{"data": ..., "errors": [...]}` answered with HTTP 200.

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One GraphQL call: the body POSTed to `graphql.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Call {
    pub query: &'static str,
    pub variables: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    data: Option<serde_json::Value>,
    /// A list of `{message, extensions: {code}}`; a bare string in some error answers.
    errors: Option<serde_json::Value>,
}

/// Top-level error codes worth retrying. Shopify answers rate limiting with `THROTTLED` (and
/// HTTP 200), and its own failures with `INTERNAL_SERVER_ERROR` instead of a 500.
const TRANSIENT_CODES: [&str; 2] = ["THROTTLED", "INTERNAL_SERVER_ERROR"];

/// The `data` of a successful answer to `operation`, or the answer's top-level errors.
pub fn data<T: DeserializeOwned>(operation: &str, body: &[u8]) -> Result<T, PluginError> {
    let envelope: Envelope = json::from_response(body)?;
    if let Some(errors) = envelope.errors.filter(|e| !is_empty(e)) {
        return Err(top_level_error(operation, &errors));
    }
    let data = envelope.data.filter(|d| !d.is_null()).ok_or_else(|| {
        PluginError::permanent(format!("shopify answered {operation} without data"))
    })?;
    serde_json::from_value(data).map_err(|e| {
        PluginError::permanent(format!("unexpected shopify answer to {operation}: {e}"))
    })
}

fn is_empty(errors: &serde_json::Value) -> bool {
    match errors {
        serde_json::Value::Null => true,
        serde_json::Value::Array(list) => list.is_empty(),
        serde_json::Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn top_level_error(operation: &str, errors: &serde_json::Value) -> PluginError {
    let list = match errors {
        serde_json::Value::Array(list) => list.clone(),
        other => vec![other.clone()],
    };
    let mut transient = false;
    let messages: Vec<String> = list
        .iter()
        .map(|error| {
            let code = error["extensions"]["code"].as_str();
            transient |= code.is_some_and(|c| TRANSIENT_CODES.contains(&c));
            let message = match error {
                serde_json::Value::String(s) => s.clone(),
                _ => error["message"]
                    .as_str()
                    .map_or_else(|| error.to_string(), str::to_string),
            };
            match code {
                Some(code) => format!("{code}: {message}"),
                None => message,
            }
        })
        .collect();
    let message = format!("shopify refused {operation}: {}", messages.join("; "));
    if transient {
        PluginError::transient(message)
    } else {
        PluginError::permanent(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Shop {
        name: String,
    }

    #[test]
    fn returns_the_data() {
        let shop: Shop =
            data("q", br#"{"data":{"name":"demo"},"extensions":{"cost":{}}}"#).unwrap();
        assert_eq!(shop.name, "demo");
    }

    #[test]
    fn classifies_top_level_errors() {
        let throttled = br#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}],"extensions":{"cost":{"requestedQueryCost":652,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":2000.0,"currentlyAvailable":120,"restoreRate":100.0}}}}"#;
        let cases: [(&[u8], &str); 5] = [
            (throttled, "transient"),
            (br#"{"errors":[{"message":"Internal error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#, "transient"),
            (br#"{"errors":[{"message":"Access denied for order field.","extensions":{"code":"ACCESS_DENIED"}}],"data":{"order":null}}"#, "permanent"),
            (br#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#, "permanent"),
            (br#"{"data":null}"#, "permanent"),
        ];
        for (body, kind) in cases {
            let err = data::<Shop>("fulfillmentCreate", body).unwrap_err();
            assert_eq!(err.kind(), kind, "{}", err.message());
        }
        let err = data::<Shop>("fulfillmentCreate", throttled).unwrap_err();
        assert_eq!(
            err.message(),
            "shopify refused fulfillmentCreate: THROTTLED: Throttled"
        );
    }
}

/// The cheapest authenticated read: the shop's name and domain (needs no access scope).
pub fn shop_query() -> Call {
    Call {
        query: "query DaifaCheck { shop { name myshopifyDomain } }",
        variables: serde_json::json!({}),
    }
}

/// "shop Demo Store (demo.myshopify.com)" from the answer to [`shop_query`].
pub fn shop_summary(body: &[u8]) -> Result<String, PluginError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Shop {
        name: String,
        myshopify_domain: String,
    }
    #[derive(Deserialize)]
    struct Data {
        shop: Shop,
    }
    let data: Data = data("shop", body)?;
    Ok(format!(
        "shop {} ({})",
        data.shop.name, data.shop.myshopify_domain
    ))
}

#[cfg(test)]
mod check_tests {
    use super::*;

    #[test]
    fn the_shop_answer_becomes_a_summary() {
        let body =
            br#"{"data":{"shop":{"name":"Demo Store","myshopifyDomain":"demo.myshopify.com"}}}"#;
        assert_eq!(
            shop_summary(body).unwrap(),
            "shop Demo Store (demo.myshopify.com)"
        );
        let denied = br#"{"errors":[{"message":"Invalid API key or access token","extensions":{"code":"ACCESS_DENIED"}}]}"#;
        assert!(shop_summary(denied).is_err());
    }
}
