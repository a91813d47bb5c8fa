//! Cancelling an order on the storefront after the shop cancelled it for its suppliers (an
//! operator's cancel, a stock-out's "cancel" choice), with the GraphQL Admin API: read the
//! order's `cancelledAt`, then `orderCancel`. An order cancelled already (by staff, by the
//! buyer, or by an earlier attempt whose answer was lost) is the same success, so a retried
//! cancellation does not fail and never cancels twice.
//!
//! `orderCancel` runs as a background job on Shopify's side: the job's id is the reference
//! kept on the order's timeline. API versions before 2025-07 take `refund: Boolean!`; from
//! 2025-07 on, `refundMethod` (the boolean is deprecated).

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::channel::{CancelOrderRequest, CancelReason};
use serde::Deserialize;
use serde_json::json;

use crate::graphql::{self, Call, UserError, gid};

/// The order's cancellation time, if any.
pub const ORDER_QUERY: &str = "query orderCancelledAt($id: ID!) {
  order(id: $id) {
    id
    cancelledAt
  }
}";

/// `orderCancel` as shopify.dev documents it from 2025-07 (`refundMethod`).
pub const ORDER_CANCEL: &str = "mutation orderCancel($orderId: ID!, $reason: OrderCancelReason!, $refundMethod: OrderCancelRefundMethodInput!, $restock: Boolean!, $notifyCustomer: Boolean, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, refundMethod: $refundMethod, restock: $restock, notifyCustomer: $notifyCustomer, staffNote: $staffNote) {
    job {
      id
      done
    }
    orderCancelUserErrors {
      code
      field
      message
    }
  }
}";

/// `orderCancel` before 2025-07 (`refund: Boolean!`).
pub const ORDER_CANCEL_WITH_REFUND_FLAG: &str = "mutation orderCancel($orderId: ID!, $reason: OrderCancelReason!, $refund: Boolean!, $restock: Boolean!, $notifyCustomer: Boolean, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, refund: $refund, restock: $restock, notifyCustomer: $notifyCustomer, staffNote: $staffNote) {
    job {
      id
      done
    }
    orderCancelUserErrors {
      code
      field
      message
    }
  }
}";

/// The first Admin API version whose `orderCancel` takes `refundMethod`.
pub const REFUND_METHOD_SINCE: &str = "2025-07";

/// How a cancellation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Shopify took the cancellation; its background job's id.
    Cancelling { job_id: Option<String> },
    /// The order was cancelled on Shopify already.
    AlreadyCancelled,
}

/// Cancels the order; `send` performs one GraphQL call and returns the body of a 2xx answer.
pub fn cancel(
    request: &CancelOrderRequest,
    api_version: &str,
    mut send: impl FnMut(&Call) -> Result<Vec<u8>, PluginError>,
) -> Result<Outcome, PluginError> {
    let order_id = gid("Order", &request.order_external_id)?;
    let state = order_state(&send(&order_query(&order_id))?, &order_id)?;
    if state.cancelled_at.is_some() {
        return Ok(Outcome::AlreadyCancelled);
    }
    cancelled(&send(&cancel_call(&order_id, request, api_version))?)
}

pub fn order_query(order_id: &str) -> Call {
    Call {
        query: ORDER_QUERY,
        variables: json!({ "id": order_id }),
    }
}

#[derive(Debug, Deserialize)]
struct OrderData {
    order: Option<OrderState>,
}

/// What a cancellation is checked against.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderState {
    pub id: String,
    pub cancelled_at: Option<String>,
}

/// Reads the answer to [`order_query`]; an unknown order is `permanent`.
pub fn order_state(body: &[u8], order_id: &str) -> Result<OrderState, PluginError> {
    let data: OrderData = graphql::data("the order query", body)?;
    data.order.ok_or_else(|| {
        PluginError::permanent(format!("order `{order_id}` was not found in the shop"))
    })
}

/// Shopify's `OrderCancelReason` for the canonical reason.
pub fn reason(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Customer => "CUSTOMER",
        CancelReason::Inventory => "INVENTORY",
        CancelReason::Fraud => "FRAUD",
        CancelReason::Declined => "DECLINED",
        CancelReason::Other => "OTHER",
    }
}

/// The `orderCancel` call for the connection's API version.
pub fn cancel_call(order_id: &str, request: &CancelOrderRequest, api_version: &str) -> Call {
    let mut variables = json!({
        "orderId": order_id,
        "reason": reason(request.reason),
        "restock": request.restock,
        "notifyCustomer": request.notify_customer,
        "staffNote": request.staff_note,
    });
    if api_version.trim() >= REFUND_METHOD_SINCE {
        variables["refundMethod"] = json!({ "originalPaymentMethodsRefund": request.refund });
        Call {
            query: ORDER_CANCEL,
            variables,
        }
    } else {
        variables["refund"] = json!(request.refund);
        Call {
            query: ORDER_CANCEL_WITH_REFUND_FLAG,
            variables,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelData {
    order_cancel: Option<CancelPayload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelPayload {
    job: Option<Job>,
    #[serde(default)]
    order_cancel_user_errors: Vec<UserError>,
}

#[derive(Debug, Deserialize)]
struct Job {
    id: String,
}

/// Reads the answer to `orderCancel`. Shopify's refusals (`orderCancelUserErrors`: the order has
/// open fulfillments, a pending payment, no refund permission) are `permanent`: the shop is
/// asked to cancel by hand.
pub fn cancelled(body: &[u8]) -> Result<Outcome, PluginError> {
    let data: CancelData = graphql::data("orderCancel", body)?;
    let payload = data
        .order_cancel
        .ok_or_else(|| PluginError::permanent("shopify answered orderCancel without a payload"))?;
    if !payload.order_cancel_user_errors.is_empty() {
        return Err(graphql::user_errors(
            "orderCancel",
            &payload.order_cancel_user_errors,
        ));
    }
    Ok(Outcome::Cancelling {
        job_id: payload.job.map(|j| j.id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> CancelOrderRequest {
        CancelOrderRequest {
            order_external_id: "450789469".into(),
            idempotency_key: "ord_1.storefront_cancel".into(),
            reason: CancelReason::Inventory,
            staff_note: Some("no supplier has it".into()),
            refund: true,
            restock: false,
            notify_customer: true,
        }
    }

    fn body(value: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn an_open_order_is_read_then_cancelled_with_the_documented_variables() {
        let mut calls = Vec::new();
        let outcome = cancel(&request(), "2025-07", |call| {
            calls.push(call.clone());
            Ok(match calls.len() {
                1 => body(json!({ "data": { "order": {
                    "id": "gid://shopify/Order/450789469", "cancelledAt": null } } })),
                _ => body(json!({ "data": { "orderCancel": {
                    "job": { "id": "gid://shopify/Job/1a2b", "done": false },
                    "orderCancelUserErrors": [] } } })),
            })
        })
        .unwrap();
        assert_eq!(
            outcome,
            Outcome::Cancelling {
                job_id: Some("gid://shopify/Job/1a2b".into())
            }
        );
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].query, ORDER_QUERY);
        assert_eq!(
            calls[0].variables,
            json!({ "id": "gid://shopify/Order/450789469" })
        );
        assert_eq!(calls[1].query, ORDER_CANCEL);
        assert_eq!(
            calls[1].variables,
            json!({
                "orderId": "gid://shopify/Order/450789469",
                "reason": "INVENTORY",
                "refundMethod": { "originalPaymentMethodsRefund": true },
                "restock": false,
                "notifyCustomer": true,
                "staffNote": "no supplier has it",
            })
        );
    }

    #[test]
    fn versions_before_2025_07_send_the_refund_flag() {
        let call = cancel_call("gid://shopify/Order/1", &request(), "2025-04");
        assert_eq!(call.query, ORDER_CANCEL_WITH_REFUND_FLAG);
        assert_eq!(call.variables["refund"], true);
        assert!(call.variables.get("refundMethod").is_none());
        let call = cancel_call("gid://shopify/Order/1", &request(), "2025-10");
        assert_eq!(call.query, ORDER_CANCEL);
        assert!(call.variables.get("refund").is_none());
    }

    #[test]
    fn an_order_cancelled_already_is_not_cancelled_again() {
        let mut calls = 0;
        let outcome = cancel(&request(), "2025-07", |_| {
            calls += 1;
            Ok(body(json!({ "data": { "order": {
                "id": "gid://shopify/Order/450789469",
                "cancelledAt": "2026-12-01T10:00:00Z" } } })))
        })
        .unwrap();
        assert_eq!(outcome, Outcome::AlreadyCancelled);
        assert_eq!(calls, 1, "no orderCancel after the read");
    }

    #[test]
    fn shopify_refusals_are_permanent_with_their_message() {
        let error = cancelled(&body(json!({ "data": { "orderCancel": {
            "job": null,
            "orderCancelUserErrors": [{ "code": "INVALID", "field": ["orderId"],
                "message": "Cannot cancel an order with open fulfillments" }] } } })))
        .unwrap_err();
        match error {
            PluginError::Permanent(m) => {
                assert!(m.contains("orderCancel"), "{m}");
                assert!(m.contains("orderId: Cannot cancel"), "{m}");
            }
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_order_or_a_bad_id_is_permanent() {
        let error = cancel(&request(), "2025-07", |_| {
            Ok(body(json!({ "data": { "order": null } })))
        })
        .unwrap_err();
        assert!(
            matches!(&error, PluginError::Permanent(m) if m.contains("not found")),
            "{error:?}"
        );
        let mut bad = request();
        bad.order_external_id = "#1001".into();
        let error = cancel(&bad, "2025-07", |_| panic!("nothing is sent")).unwrap_err();
        assert!(matches!(error, PluginError::Permanent(_)));
    }

    #[test]
    fn throttling_is_transient() {
        let error = cancel(&request(), "2025-07", |_| {
            Ok(body(json!({ "errors": [{ "message": "Throttled",
                "extensions": { "code": "THROTTLED" } }] })))
        })
        .unwrap_err();
        assert!(matches!(error, PluginError::Transient(_)), "{error:?}");
    }

    #[test]
    fn every_reason_has_a_shopify_value() {
        for (r, s) in [
            (CancelReason::Customer, "CUSTOMER"),
            (CancelReason::Inventory, "INVENTORY"),
            (CancelReason::Fraud, "FRAUD"),
            (CancelReason::Declined, "DECLINED"),
            (CancelReason::Other, "OTHER"),
        ] {
            assert_eq!(reason(r), s);
        }
    }
}
