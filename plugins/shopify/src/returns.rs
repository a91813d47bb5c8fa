//! Answering a customer's return request (a Shopify `Return` in status `REQUESTED`), with the
//! GraphQL Admin API: read the return's status, then `returnApproveRequest` or
//! `returnDeclineRequest`. A return already answered the same way is the same success, so a
//! retried decision (after a timeout) does not fail.

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::channel::ReturnDecision;
use serde::Deserialize;
use serde_json::json;

use crate::graphql::{self, Call, UserError, gid};

/// The return's status and order.
pub const RETURN_QUERY: &str = "query returnStatus($id: ID!) {
  return(id: $id) {
    id
    status
    order {
      id
    }
  }
}";

/// The mutation as shopify.dev documents it (its example selects more of the return).
pub const RETURN_APPROVE_REQUEST: &str =
    "mutation returnApproveRequest($input: ReturnApproveRequestInput!) {
  returnApproveRequest(input: $input) {
    return {
      id
      status
    }
    userErrors {
      code
      field
      message
    }
  }
}";

pub const RETURN_DECLINE_REQUEST: &str =
    "mutation returnDeclineRequest($input: ReturnDeclineRequestInput!) {
  returnDeclineRequest(input: $input) {
    return {
      id
      status
    }
    userErrors {
      code
      field
      message
    }
  }
}";

/// Shopify keeps at most this many characters of a decline note.
pub const DECLINE_NOTE_MAX: usize = 500;

/// How a decision ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Shopify recorded the answer now.
    Answered,
    /// The return was already answered this way (an earlier attempt, or the merchant).
    AlreadyAnswered,
}

/// What to do for a decision, decided from the return's current status.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    AlreadyAnswered,
    Answer(Call),
}

/// Approves or declines the return; `send` performs one GraphQL call and returns the body of a
/// 2xx answer. A decision without the storefront's return id is `unsupported`: there is no
/// Shopify return to answer (the case was opened in Daifa, not on the storefront).
pub fn decide_return(
    decision: &ReturnDecision,
    mut send: impl FnMut(&Call) -> Result<Vec<u8>, PluginError>,
) -> Result<Outcome, PluginError> {
    let return_id = return_id(decision)?;
    let state = return_state(&send(&return_query(&return_id))?, &return_id)?;
    match decide(&state, decision)? {
        Decision::AlreadyAnswered => Ok(Outcome::AlreadyAnswered),
        Decision::Answer(call) => {
            let operation = if decision.approved {
                "returnApproveRequest"
            } else {
                "returnDeclineRequest"
            };
            answered(operation, &send(&call)?).map(|()| Outcome::Answered)
        }
    }
}

/// The global id of the decision's return.
pub fn return_id(decision: &ReturnDecision) -> Result<String, PluginError> {
    match decision.external_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => gid("Return", id),
        _ => Err(PluginError::unsupported(format!(
            "case `{}` has no Shopify return: there is no return request to answer on the storefront",
            decision.case_id
        ))),
    }
}

pub fn return_query(return_id: &str) -> Call {
    Call {
        query: RETURN_QUERY,
        variables: json!({ "id": return_id }),
    }
}

#[derive(Debug, Deserialize)]
struct ReturnData {
    #[serde(rename = "return")]
    ret: Option<ReturnState>,
}

/// What a decision is checked against.
#[derive(Debug, Clone, Deserialize)]
pub struct ReturnState {
    pub id: String,
    /// `REQUESTED`, `OPEN` (approved), `CLOSED`, `DECLINED` or `CANCELED`.
    pub status: String,
    pub order: Option<OrderRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderRef {
    pub id: String,
}

/// Reads the answer to [`return_query`]; an unknown return is `permanent`.
pub fn return_state(body: &[u8], return_id: &str) -> Result<ReturnState, PluginError> {
    let data: ReturnData = graphql::data("the return query", body)?;
    data.ret.ok_or_else(|| {
        PluginError::permanent(format!("return `{return_id}` was not found in the shop"))
    })
}

/// Decides between answering the return and nothing to do.
pub fn decide(state: &ReturnState, decision: &ReturnDecision) -> Result<Decision, PluginError> {
    let order = gid("Order", &decision.order_external_id)?;
    if let Some(of) = &state.order
        && of.id != order
    {
        return Err(PluginError::permanent(format!(
            "return `{}` belongs to order `{}`, not to `{order}`",
            state.id, of.id
        )));
    }
    let status = state.status.to_ascii_uppercase();
    match (status.as_str(), decision.approved) {
        ("REQUESTED", true) => Ok(Decision::Answer(Call {
            query: RETURN_APPROVE_REQUEST,
            variables: json!({ "input": { "id": state.id, "notifyCustomer": true } }),
        })),
        ("REQUESTED", false) => {
            let mut input =
                json!({ "id": state.id, "declineReason": "OTHER", "notifyCustomer": true });
            if let Some(note) = decision
                .note
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
            {
                input["declineNote"] =
                    json!(note.chars().take(DECLINE_NOTE_MAX).collect::<String>());
            }
            Ok(Decision::Answer(Call {
                query: RETURN_DECLINE_REQUEST,
                variables: json!({ "input": input }),
            }))
        }
        // Approved returns are open, then closed once processed.
        ("OPEN" | "CLOSED", true) | ("DECLINED" | "CANCELED", false) => {
            Ok(Decision::AlreadyAnswered)
        }
        (other, approved) => Err(PluginError::permanent(format!(
            "return `{}` is {} on Shopify and can no longer be {}",
            state.id,
            other.to_ascii_lowercase(),
            if approved { "approved" } else { "declined" }
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    #[serde(default)]
    user_errors: Vec<UserError>,
}

/// Reads the answer to a return mutation; `userErrors` are `permanent`.
pub fn answered(operation: &str, body: &[u8]) -> Result<(), PluginError> {
    let data: serde_json::Map<String, serde_json::Value> = graphql::data(operation, body)?;
    let payload = data
        .get(operation)
        .filter(|p| !p.is_null())
        .ok_or_else(|| {
            PluginError::permanent(format!("shopify answered {operation} without a payload"))
        })?;
    let payload: Payload = serde_json::from_value(payload.clone()).map_err(|e| {
        PluginError::permanent(format!("unexpected shopify answer to {operation}: {e}"))
    })?;
    if payload.user_errors.is_empty() {
        Ok(())
    } else {
        Err(graphql::user_errors(operation, &payload.user_errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const ORDER: &str = "5196695273621";
    const RETURN: &str = "3547267221";

    fn decision(approved: bool, note: Option<&str>) -> ReturnDecision {
        ReturnDecision {
            order_external_id: ORDER.into(),
            case_id: "case_1".into(),
            external_id: Some(RETURN.into()),
            approved,
            note: note.map(str::to_string),
        }
    }

    fn state(status: &str) -> ReturnState {
        return_state(
            &status_answer(status),
            &format!("gid://shopify/Return/{RETURN}"),
        )
        .unwrap()
    }

    fn status_answer(status: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({ "data": { "return": {
            "id": format!("gid://shopify/Return/{RETURN}"), "status": status,
            "order": { "id": format!("gid://shopify/Order/{ORDER}") }
        } } }))
        .unwrap()
    }

    fn mutation(decision: Decision) -> Call {
        match decision {
            Decision::Answer(call) => call,
            other => panic!("expected a mutation, got {other:?}"),
        }
    }

    #[test]
    fn a_requested_return_is_approved() {
        let call = mutation(decide(&state("REQUESTED"), &decision(true, Some("RMA-1"))).unwrap());
        assert_eq!(call.query, RETURN_APPROVE_REQUEST);
        assert_eq!(
            call.variables,
            json!({ "input": { "id": format!("gid://shopify/Return/{RETURN}"), "notifyCustomer": true } })
        );
    }

    #[test]
    fn a_requested_return_is_declined_with_the_note() {
        let call = mutation(
            decide(
                &state("REQUESTED"),
                &decision(false, Some(" Opened and used. ")),
            )
            .unwrap(),
        );
        assert_eq!(call.query, RETURN_DECLINE_REQUEST);
        assert_eq!(
            call.variables,
            json!({ "input": { "id": format!("gid://shopify/Return/{RETURN}"), "declineReason": "OTHER",
                               "declineNote": "Opened and used.", "notifyCustomer": true } })
        );
        let long = "x".repeat(600);
        let call = mutation(decide(&state("REQUESTED"), &decision(false, Some(&long))).unwrap());
        assert_eq!(
            call.variables["input"]["declineNote"]
                .as_str()
                .unwrap()
                .len(),
            DECLINE_NOTE_MAX
        );
        let call = mutation(decide(&state("REQUESTED"), &decision(false, None)).unwrap());
        assert!(call.variables["input"].get("declineNote").is_none());
    }

    #[test]
    fn an_answered_return_is_the_same_success_or_permanent() {
        for (status, approved) in [
            ("OPEN", true),
            ("CLOSED", true),
            ("DECLINED", false),
            ("CANCELED", false),
        ] {
            assert_eq!(
                decide(&state(status), &decision(approved, None)).unwrap(),
                Decision::AlreadyAnswered,
                "{status}"
            );
        }
        let err = decide(&state("DECLINED"), &decision(true, None)).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            (
                "permanent",
                "return `gid://shopify/Return/3547267221` is declined on Shopify and can no longer be approved"
            )
        );
        assert_eq!(
            decide(&state("OPEN"), &decision(false, None))
                .unwrap_err()
                .kind(),
            "permanent"
        );
    }

    #[test]
    fn a_return_of_another_order_is_refused() {
        let mut other = decision(true, None);
        other.order_external_id = "1".into();
        let err = decide(&state("REQUESTED"), &other).unwrap_err();
        assert_eq!(err.kind(), "permanent");
        assert!(
            err.message().contains("belongs to order"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn without_a_storefront_return_there_is_nothing_to_answer() {
        let mut calls = 0;
        for external_id in [None, Some("  ".to_string())] {
            let mut d = decision(true, None);
            d.external_id = external_id;
            let err = decide_return(&d, |_| {
                calls += 1;
                Ok(Vec::new())
            })
            .unwrap_err();
            assert_eq!(err.kind(), "unsupported");
            assert!(
                err.message().contains("no Shopify return"),
                "{}",
                err.message()
            );
        }
        assert_eq!(calls, 0);
        let mut d = decision(true, None);
        d.external_id = Some(format!("gid://shopify/Return/{RETURN}"));
        assert_eq!(
            return_id(&d).unwrap(),
            format!("gid://shopify/Return/{RETURN}")
        );
    }

    #[test]
    fn decide_return_reads_then_answers() {
        let mut calls: Vec<Call> = Vec::new();
        let outcome = decide_return(&decision(true, None), |call| {
            calls.push(call.clone());
            Ok(if call.query == RETURN_QUERY {
                status_answer("REQUESTED")
            } else {
                serde_json::to_vec(&json!({ "data": { "returnApproveRequest": {
                    "return": { "id": format!("gid://shopify/Return/{RETURN}"), "status": "OPEN" },
                    "userErrors": []
                } } }))
                .unwrap()
            })
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Answered);
        assert_eq!(
            calls.iter().map(|c| c.query).collect::<Vec<_>>(),
            [RETURN_QUERY, RETURN_APPROVE_REQUEST]
        );
        assert_eq!(
            calls[0].variables,
            json!({ "id": format!("gid://shopify/Return/{RETURN}") })
        );

        let mut calls = 0;
        let outcome = decide_return(&decision(true, None), |_| {
            calls += 1;
            Ok(status_answer("OPEN"))
        })
        .unwrap();
        assert_eq!((outcome, calls), (Outcome::AlreadyAnswered, 1));
    }

    #[test]
    fn user_errors_and_unknown_returns_are_permanent() {
        let body = br#"{"data":{"returnApproveRequest":{"return":null,"userErrors":[
            {"code":"INVALID_STATE","field":["id"],"message":"Return is not approvable. Only returns with status REQUESTED can be approved."}]}}}"#;
        let err = answered("returnApproveRequest", body).unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            (
                "permanent",
                "shopify refused returnApproveRequest: id: Return is not approvable. Only returns with status REQUESTED can be approved."
            )
        );
        assert_eq!(
            answered(
                "returnDeclineRequest",
                br#"{"data":{"returnDeclineRequest":null}}"#
            )
            .unwrap_err()
            .kind(),
            "permanent"
        );
        let err =
            return_state(br#"{"data":{"return":null}}"#, "gid://shopify/Return/1").unwrap_err();
        assert_eq!(
            err.message(),
            "return `gid://shopify/Return/1` was not found in the shop"
        );
        let throttled: Value =
            json!({"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]});
        let err = decide_return(&decision(true, None), |_| {
            Ok(serde_json::to_vec(&throttled).unwrap())
        })
        .unwrap_err();
        assert_eq!(err.kind(), "transient");
    }
}
