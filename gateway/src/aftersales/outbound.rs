//! The jobs cases set off: a refund and a return decision through the storefront, a
//! cancellation and a return authorization at the supplier.

use super::*;

/// The case a job acts on and its order, read from one snapshot: a job only reads before it
/// calls a plugin, so it takes no write lock (SQLite has one for the whole database).
async fn case_and_order(
    state: &Services,
    case_id: &str,
) -> anyhow::Result<Option<(Case, StoredOrder)>> {
    let mut tx = state.db.snapshot().await?;
    let Some(case) = get_in(&mut tx, case_id).await? else {
        return Ok(None);
    };
    let order = orders::get_in(&mut tx, &case.order_id)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!("the order {} of case {case_id} is missing", case.order_id)
        })?;
    tx.rollback().await?;
    Ok(Some((case, order)))
}

/// The `channel.refund` job: pays the case's refund back through the storefront's plugin.
pub async fn run_refund(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let Some((case, order)) = case_and_order(state, &job.subject_id).await? else {
        return Ok(missing(&job.subject_id));
    };
    if !matches!(
        case.state,
        CaseState::Approved | CaseState::Intercepted | CaseState::Inspected
    ) {
        return Ok(Outcome::Succeeded);
    }
    let amount = case.refund_requested_minor.unwrap_or(0) - case.refunded_minor;
    if amount <= 0 {
        // Paid already (on the storefront, or by hand): the case moves on, nothing is sent.
        let mut tx = state.db.begin().await?;
        let mut input = ActionInput::of(Action::Refund);
        input.amount_minor = Some(0);
        input.note = Some("nothing left to refund: paid already".into());
        match act(&mut tx, &case.id, input, "daifa").await {
            Ok(_) | Err(CaseError::Conflict(_)) => {}
            Err(e) => return Err(anyhow_of(e)),
        }
        tx.commit().await?;
        return Ok(Outcome::Succeeded);
    }
    let (channel, plugin, ctx) = match callee(state, &order.connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let request = RefundRequest {
        order_external_id: order.external_id.clone(),
        case_id: case.id.clone(),
        amount: Money {
            amount_minor: amount.max(0),
            currency: case.currency.clone(),
        },
        lines: if case.kind == CaseKind::PartialCompensation {
            Vec::new()
        } else {
            case.lines
                .iter()
                .map(|l| LineQuantity {
                    external_line_id: l.external_line_id.clone(),
                    quantity: l.quantity,
                })
                .collect()
        },
        reason: case.note.clone().or(case.reason.map(|r| machine::name(&r))),
        notify_customer: state.settings.fulfillment.notify_customer,
    };
    match plugin.refund(ctx, &request).await {
        Ok(refund) => {
            let mut tx = state.db.begin().await?;
            let mut input = ActionInput::of(Action::Refund);
            input.amount_minor = Some(amount.max(0));
            input.note = Some(format!(
                "refunded through {} as {}",
                channel.name, refund.external_id
            ));
            match act(&mut tx, &case.id, input, "daifa").await {
                Ok(_) => {}
                // Moved on meanwhile (refunded by hand): nothing to record twice.
                Err(CaseError::Conflict(m)) => {
                    tracing::warn!(case_id = %case.id, reason = %m, "refund recorded but the case moved on")
                }
                Err(e) => return Err(anyhow_of(e)),
            }
            tx.commit().await?;
            Ok(Outcome::Succeeded)
        }
        Err(failure) => Ok(outcome_of(failure)),
    }
}

/// The `channel.return_decision` job: answers the storefront's return request.
pub async fn run_return_decision(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let Some((case, order)) = case_and_order(state, &job.subject_id).await? else {
        return Ok(missing(&job.subject_id));
    };
    let (_, plugin, ctx) = match callee(state, &order.connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let approved =
        !matches!(case.state, CaseState::Rejected | CaseState::Closed) || case.refunded_minor > 0;
    let note = match (&case.return_authorization, &case.return_address) {
        (Some(rma), Some(address)) => Some(format!(
            "Return authorization {rma}; send the goods to {address}"
        )),
        (Some(rma), None) => Some(format!("Return authorization {rma}")),
        _ => case.note.clone(),
    };
    let decision = ReturnDecision {
        order_external_id: order.external_id.clone(),
        case_id: case.id.clone(),
        external_id: case.external_id.clone(),
        approved,
        note,
    };
    match plugin.decide_return(ctx, &decision).await {
        Ok(()) => Ok(Outcome::Succeeded),
        // A storefront without return requests has nothing to answer.
        Err(failure) if failure.error.kind() == "unsupported" => Ok(Outcome::Succeeded),
        Err(failure) => Ok(outcome_of(failure)),
    }
}

/// The `supplier.cancel` job: asks the supplier to cancel (or stop) a supplier order, because
/// its order was cancelled, or because its lines went to another supplier (a fail-over).
pub async fn run_cancel(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let Some(so) = supplier_orders::get(&state.db, &job.subject_id).await? else {
        return Ok(missing(&job.subject_id));
    };
    let status = SoStatus::parse(&so.status);
    // Cancelled already, or live again since (an operator revived a dead push): nothing to ask.
    if matches!(
        status,
        Some(
            SoStatus::Cancelled
                | SoStatus::Pending
                | SoStatus::Held
                | SoStatus::Submitted
                | SoStatus::Accepted
        )
    ) {
        return Ok(Outcome::Succeeded);
    }
    let reason = match status {
        Some(SoStatus::TimedOut) => {
            "the order was not acknowledged in time and went to another supplier: do not ship it"
        }
        Some(SoStatus::Undeliverable) => {
            "the order could not be delivered to you and went to another supplier: do not ship it"
        }
        _ => "the order was cancelled: do not ship it",
    };
    let (_, plugin, ctx) = match callee(state, &so.supplier_connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let request = CancelRequest {
        order: SupplierOrderRef {
            supplier_order_id: so.id.clone(),
            external_id: so.external_id.clone(),
        },
        idempotency_key: job.idempotency_key.clone(),
        reason: Some(reason.into()),
    };
    match plugin.cancel_order(ctx, &request).await {
        Ok(answer) => {
            let mut tx = state.db.begin().await?;
            match answer {
                SupplierOrderStatus::CancellationAccepted | SupplierOrderStatus::Closed => {
                    on_cancellation(&mut tx, &so.id, true, None).await?;
                }
                SupplierOrderStatus::CancellationRejected => {
                    on_cancellation(
                        &mut tx,
                        &so.id,
                        false,
                        Some("the supplier could not cancel it"),
                    )
                    .await?;
                }
                // Pending at the supplier's: its `cancelled` event answers later.
                _ => {}
            }
            tx.commit().await?;
            Ok(Outcome::Succeeded)
        }
        Err(failure) => Ok(outcome_of(failure)),
    }
}

/// The `supplier.return` job: tells the supplier goods come back and records where they go.
pub async fn run_return(state: &Services, job: &ClaimedJob) -> anyhow::Result<Outcome> {
    let Some((case, _)) = case_and_order(state, &job.subject_id).await? else {
        return Ok(missing(&job.subject_id));
    };
    let Some(so_id) = &case.supplier_order_id else {
        return Ok(Outcome::Succeeded);
    };
    let Some(so) = supplier_orders::get(&state.db, so_id).await? else {
        return Ok(missing(so_id));
    };
    let (_, plugin, ctx) = match callee(state, &so.supplier_connection_id).await? {
        Ok(c) => c,
        Err(outcome) => return Ok(outcome),
    };
    let request = ReturnRequest {
        order: SupplierOrderRef {
            supplier_order_id: so.id.clone(),
            external_id: so.external_id.clone(),
        },
        case_id: case.id.clone(),
        idempotency_key: job.idempotency_key.clone(),
        kind: wit_kind(case.kind),
        return_kind: match case.return_kind {
            Some(ReturnKind::InTransitReturn) => daifa_plugin_host::ReturnKind::InTransitReturn,
            Some(ReturnKind::RefusedParcel) => daifa_plugin_host::ReturnKind::RefusedParcel,
            _ => daifa_plugin_host::ReturnKind::CustomerReturn,
        },
        reason: case.reason.map(wit_reason),
        note: case.note.clone(),
        lines: case
            .lines
            .iter()
            .map(|l| LineQuantity {
                external_line_id: l.external_line_id.clone(),
                quantity: l.quantity,
            })
            .collect(),
    };
    match plugin.authorize_return(ctx, &request).await {
        Ok(authorization) => {
            let mut tx = state.db.begin().await?;
            let address = authorization
                .address
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?;
            cases::set_return_authorization(
                &mut tx,
                &case.id,
                authorization.rma.as_deref(),
                address.as_deref(),
            )
            .await?;
            history(&mut tx, &case.id, "return_authorized", Some(case.state), case.state, "supplier",
                json!({ "rma": authorization.rma, "address": authorization.address, "note": authorization.note })).await?;
            tx.commit().await?;
            Ok(Outcome::Succeeded)
        }
        Err(failure) => Ok(outcome_of(failure)),
    }
}

fn missing(id: &str) -> Outcome {
    Outcome::Refused {
        kind: "missing".into(),
        error: format!("{id} does not exist"),
    }
}
