//! The GraphQL Admin API's envelope (`{"data": ..., "errors": [...]}` answered with HTTP 200),
//! its HTTP statuses, connections and global ids.

use daifa_plugin_sdk::types::OutboundResponse;
use daifa_plugin_sdk::{PluginError, http, json};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::order::Id;

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

/// Classifies the HTTP status of an Admin API answer. Shopify answers a bad or revoked token
/// with 401 and a missing access scope (or a shop that is not available) with 403: retrying will
/// not help, and the operator needs to know which secret or scope to fix. Other statuses as the
/// SDK classifies them: 408, 429 and 5xx are `transient`.
pub fn check_status(
    what: &str,
    response: OutboundResponse,
) -> Result<OutboundResponse, PluginError> {
    let hint = match response.status {
        401 => "the access token was refused: check the connection secret `access_token`",
        403 => {
            "access denied: the app may lack an access scope (see the plugin's README) or the shop is not available"
        }
        _ => return http::check_status(what, response),
    };
    let excerpt: String = String::from_utf8_lossy(&response.body)
        .chars()
        .take(300)
        .collect();
    Err(PluginError::permanent(format!(
        "{what} answered {}, {hint}: {excerpt}",
        response.status
    )))
}

/// A connection's page: its nodes and whether more follow.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub nodes: Vec<T>,
    pub page_info: Option<PageInfo>,
}

impl<T> Page<T> {
    pub fn has_more(&self) -> bool {
        self.page_info.as_ref().is_some_and(|p| p.has_next_page)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Where the next page starts (`after`); only when the query selects it.
    #[serde(default)]
    pub end_cursor: Option<String>,
}

/// One of a mutation's `userErrors`: Shopify refused the input. `ReturnUserError` adds a `code`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserError {
    #[serde(default)]
    pub field: Option<Vec<String>>,
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

/// The `permanent` error of a mutation's `userErrors` ("shopify refused refundCreate: field: message;
/// ..."): Shopify refused the input, which a retry will not change.
pub fn user_errors(operation: &str, errors: &[UserError]) -> PluginError {
    let messages: Vec<String> = errors
        .iter()
        .map(|e| match e.field.as_deref() {
            Some(field) if !field.is_empty() => format!("{}: {}", field.join("."), e.message),
            _ => e.message.clone(),
        })
        .collect();
    PluginError::permanent(format!(
        "shopify refused {operation}: {}",
        messages.join("; ")
    ))
}

/// A Shopify global id from a numeric REST id; a global id of the right kind is taken as it is.
pub fn gid(kind: &str, id: &str) -> Result<String, PluginError> {
    let prefix = format!("gid://shopify/{kind}/");
    let id = id.trim();
    let numeric = id.strip_prefix(prefix.as_str()).unwrap_or(id);
    if numeric.is_empty() || !numeric.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PluginError::permanent(format!(
            "`{id}` is not a shopify {kind} id"
        )));
    }
    Ok(format!("{prefix}{numeric}"))
}

/// The REST id in a global id (`gid://shopify/Order/820982911946154508` → 820982911946154508):
/// the number webhooks carry, and so the external id of orders and lines whichever way they
/// arrived. Global ids of these resources end in the REST id (`admin_graphql_api_id` of the
/// webhook samples), which spares selecting `legacyResourceId`, a field `LineItem` lacks.
pub fn legacy_id(kind: &str, gid: &str) -> Result<Id, PluginError> {
    gid.strip_prefix("gid://shopify/")
        .and_then(|rest| rest.strip_prefix(kind))
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|numeric| numeric.parse().ok())
        .map(Id)
        .ok_or_else(|| PluginError::bad_payload(format!("`{gid}` is not a shopify {kind} id")))
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

#[cfg(test)]
mod status_and_id_tests {
    use super::*;

    fn response(status: u16, body: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn refused_credentials_are_permanent_and_say_what_to_fix() {
        let what = "POST https://demo.myshopify.com/admin/api/2025-07/graphql.json";
        let err = check_status(
            what,
            response(
                401,
                r#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(
            err.message().contains("answered 401")
                && err.message().contains("`access_token`")
                && err.message().contains("Invalid API key"),
            "{}",
            err.message()
        );
        let err = check_status(what, response(403, "")).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(err.message().contains("access scope"), "{}", err.message());
    }

    #[test]
    fn other_statuses_are_classified_by_the_sdk() {
        for (status, kind) in [(429, "transient"), (503, "transient"), (404, "permanent")] {
            let err = check_status("POST x", response(status, "")).unwrap_err();
            assert_eq!(err.kind(), kind, "{status}");
        }
        assert!(check_status("POST x", response(200, "{}")).is_ok());
    }

    #[test]
    fn global_ids_carry_the_rest_ids() {
        assert_eq!(
            legacy_id("Order", "gid://shopify/Order/820982911946154508"),
            Ok(Id(820_982_911_946_154_508))
        );
        assert_eq!(
            legacy_id("LineItem", "gid://shopify/LineItem/866550311766439020"),
            Ok(Id(866_550_311_766_439_020))
        );
        for wrong in [
            "gid://shopify/LineItem/1",
            "gid://shopify/OrderX/1",
            "gid://shopify/Order/",
            "gid://shopify/Order/1a",
            "820982911946154508",
        ] {
            let err = legacy_id("Order", wrong).unwrap_err();
            assert_eq!(err.kind(), "bad-payload", "{wrong}");
        }
        assert_eq!(gid("Order", "5").unwrap(), "gid://shopify/Order/5");
        assert_eq!(
            gid("Order", "gid://shopify/Order/5").unwrap(),
            "gid://shopify/Order/5"
        );
    }
}
