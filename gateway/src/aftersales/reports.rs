//! What the other parties report: a storefront's request, a supplier's cancellation, return
//! and inspection, a carrier's exception, a replacement shipped.

use super::*;

/// A storefront cancelled an order a supplier had already shipped (in whole or in part), inside
/// the ingest transaction: a cancel case, opened once per order, for the operator to approve
/// (the supplier is then asked to intercept the parcel) or to turn into a return.
pub async fn cancelled_after_shipping(
    tx: &mut Tx,
    order_id: &str,
    raw_id: &str,
    reason: Option<&str>,
) -> anyhow::Result<Value> {
    let mut new = NewCase::new(order_id, CaseKind::Cancel, Source::Storefront);
    new.note = Some(match reason {
        Some(reason) => format!("cancelled on the storefront after shipping: {reason}"),
        None => "cancelled on the storefront after shipping".into(),
    });
    new.external_id = Some(format!("{order_id}.cancelled_after_shipping"));
    match open(tx, new, "storefront").await {
        Ok(case) => Ok(json!({ "case_id": case.id, "state": case.state })),
        Err(CaseError::Internal(e)) => Err(e),
        Err(refused) => {
            orders::record_event(
                tx,
                order_id,
                "case.refused",
                json!({ "kind": "cancel", "reason": refused.to_string(), "raw_request_id": raw_id }),
            )
            .await?;
            Ok(json!({ "case": "refused", "reason": refused.to_string() }))
        }
    }
}

/// A storefront's after-sales request (`case-opened`), inside the ingest transaction: the case
/// of its order, opened once.
pub async fn from_storefront(
    tx: &mut Tx,
    channel_connection_id: &str,
    raw_id: &str,
    request: &CaseRequest,
) -> anyhow::Result<Value> {
    let Some(order) =
        orders::find_by_external_id(tx, channel_connection_id, &request.order_external_id).await?
    else {
        return Ok(json!({ "external_id": request.order_external_id, "case": "unknown_order" }));
    };
    // Money in another currency than the order's (a storefront's presentment currency) cannot
    // be weighed against what was paid: refused where the shop sees it, nothing recorded wrong.
    if let Some(money) = request
        .amount
        .as_ref()
        .filter(|m| !m.currency.eq_ignore_ascii_case(&order.currency))
    {
        let reason = format!(
            "the storefront's amount is {} minor units of {}, the order is in {}: record it by hand",
            money.amount_minor, money.currency, order.currency
        );
        orders::record_event(
            tx,
            &order.id,
            "case.refused",
            json!({ "external_id": request.external_id, "reason": reason, "raw_request_id": raw_id }),
        )
        .await?;
        return Ok(json!({ "order_id": order.id, "case": "refused", "reason": reason }));
    }
    let mut new = NewCase::new(&order.id, kind_of(request.kind), Source::Storefront);
    new.reason = request.reason.map(reason_of);
    new.note = request.note.clone();
    new.evidence = request.evidence.clone();
    new.lines = request
        .lines
        .iter()
        .map(|l| CaseLine {
            external_line_id: l.external_line_id.clone(),
            quantity: l.quantity,
        })
        .collect();
    new.external_id = Some(request.external_id.clone());
    new.refund_minor = request.amount.as_ref().map(|m| m.amount_minor);
    if request.refunded {
        new.refunded_minor = request.amount.as_ref().map(|m| m.amount_minor);
    }
    let case = match open(tx, new, "storefront").await {
        Ok(case) => case,
        Err(CaseError::Internal(e)) => return Err(e),
        // The storefront decided; Daifa records what it cannot accept as it stands.
        Err(refused) => {
            orders::record_event(
                tx,
                &order.id,
                "case.refused",
                json!({ "external_id": request.external_id, "reason": refused.to_string(), "raw_request_id": raw_id }),
            )
            .await?;
            return Ok(
                json!({ "order_id": order.id, "case": "refused", "reason": refused.to_string() }),
            );
        }
    };
    // The same request again, or a refund the storefront made for a case it opened before (a
    // return refunded in its admin): what it paid and the case does not know is recorded.
    if let Some(amount) = request
        .amount
        .as_ref()
        .filter(|_| request.refunded)
        .map(|m| m.amount_minor)
        && amount > case.refunded_minor
    {
        match refunded_on_storefront(tx, &case.id, amount - case.refunded_minor, "storefront").await
        {
            Ok(()) => {}
            Err(CaseError::Internal(e)) => return Err(e),
            Err(refused) => {
                orders::record_event(
                    tx,
                    &order.id,
                    "case.refused",
                    json!({ "external_id": request.external_id, "reason": refused.to_string(), "raw_request_id": raw_id }),
                )
                .await?;
            }
        }
    }
    Ok(json!({ "order_id": order.id, "case_id": case.id, "state": case.state }))
}

fn kind_of(kind: daifa_plugin_host::CaseKind) -> CaseKind {
    use daifa_plugin_host::CaseKind as K;
    match kind {
        K::Cancel => CaseKind::Cancel,
        K::RefundOnly => CaseKind::RefundOnly,
        K::PartialCompensation => CaseKind::PartialCompensation,
        K::ReturnRefund => CaseKind::ReturnRefund,
        K::Exchange => CaseKind::Exchange,
        K::Reship => CaseKind::Reship,
        K::WarrantyRepair => CaseKind::WarrantyRepair,
        K::PaidMaintenance => CaseKind::PaidMaintenance,
    }
}

fn reason_of(reason: daifa_plugin_host::CaseReason) -> Reason {
    use daifa_plugin_host::CaseReason as R;
    match reason {
        R::Quality => Reason::Quality,
        R::Damaged => Reason::Damaged,
        R::WrongItem => Reason::WrongItem,
        R::WrongQuantity => Reason::WrongQuantity,
        R::NotReceived => Reason::NotReceived,
        R::Lost => Reason::Lost,
        R::CustomsHeld => Reason::CustomsHeld,
        R::ChangedMind => Reason::ChangedMind,
        R::LateDelivery => Reason::LateDelivery,
        R::NotAsDescribed => Reason::NotAsDescribed,
        R::Other => Reason::Other,
    }
}

pub(super) fn wit_kind(kind: CaseKind) -> daifa_plugin_host::CaseKind {
    use daifa_plugin_host::CaseKind as K;
    match kind {
        CaseKind::Cancel => K::Cancel,
        CaseKind::RefundOnly => K::RefundOnly,
        CaseKind::PartialCompensation => K::PartialCompensation,
        CaseKind::ReturnRefund => K::ReturnRefund,
        CaseKind::Exchange => K::Exchange,
        CaseKind::Reship => K::Reship,
        CaseKind::WarrantyRepair => K::WarrantyRepair,
        CaseKind::PaidMaintenance => K::PaidMaintenance,
    }
}

pub(super) fn wit_reason(reason: Reason) -> daifa_plugin_host::CaseReason {
    use daifa_plugin_host::CaseReason as R;
    match reason {
        Reason::Quality => R::Quality,
        Reason::Damaged => R::Damaged,
        Reason::WrongItem => R::WrongItem,
        Reason::WrongQuantity => R::WrongQuantity,
        Reason::NotReceived => R::NotReceived,
        Reason::Lost => R::Lost,
        Reason::CustomsHeld => R::CustomsHeld,
        Reason::ChangedMind => R::ChangedMind,
        Reason::LateDelivery => R::LateDelivery,
        Reason::NotAsDescribed => R::NotAsDescribed,
        Reason::Other => R::Other,
    }
}

/// The supplier answered a cancellation (now or later): the supplier order is cancelled or
/// not; the case is intercepted when every pushed supplier order of the order is cancelled,
/// and fails when one refuses.
pub async fn on_cancellation(
    tx: &mut Tx,
    supplier_order_id: &str,
    accepted: bool,
    reason: Option<&str>,
) -> anyhow::Result<Value> {
    let order_id = supplier_orders::order_of(tx, supplier_order_id).await?;
    let Some(order_id) = order_id else {
        return Ok(json!({ "supplier_order_id": supplier_order_id, "event": "unknown" }));
    };
    orders::lock(tx, &order_id).await?;
    if accepted {
        // A failed-over supplier order keeps its status (its lines went elsewhere): the
        // supplier's confirmation is on the timeline.
        let _ = supplier_orders::transition(
            tx,
            supplier_order_id,
            SoStatus::Cancelled,
            supplier_orders::Change {
                external_id: None,
                reason: reason.or(Some("cancelled at the supplier's")),
            },
        )
        .await?;
    } else {
        refused_cancellation(tx, &order_id, supplier_order_id, reason).await?;
    }
    orders::record_event(
        tx,
        &order_id,
        if accepted {
            "supplier_order.cancelled"
        } else {
            "supplier_order.cancel_refused"
        },
        json!({ "supplier_order_id": supplier_order_id, "reason": reason }),
    )
    .await?;
    if let Some(case_id) = cases::intercepting_cancel(tx, &order_id).await? {
        if !accepted {
            act(
                tx,
                &case_id,
                ActionInput::of(Action::InterceptFailed),
                "supplier",
            )
            .await
            .map_err(anyhow_of)?;
        } else {
            let left = supplier_orders::count_in(
                tx,
                &order_id,
                &[
                    SoStatus::Submitted,
                    SoStatus::Accepted,
                    SoStatus::Shipped,
                    SoStatus::CancelRequested,
                ],
            )
            .await?;
            if left == 0 {
                act(
                    tx,
                    &case_id,
                    ActionInput::of(Action::Intercepted),
                    "supplier",
                )
                .await
                .map_err(anyhow_of)?;
            }
        }
    }
    Ok(
        json!({ "supplier_order_id": supplier_order_id, "event": if accepted { "cancelled" } else { "cancel_refused" } }),
    )
}

/// A supplier could not cancel: an order that stays cancelled (the storefront's or the
/// operator's cancellation, a fail-over), or a supplier order whose lines the buyer all
/// removed, will have goods shipped that nobody is to ship, and a person has to stop them;
/// otherwise (an after-sales cancel case, which fails) the supplier order goes on as
/// acknowledged.
async fn refused_cancellation(
    tx: &mut Tx,
    order_id: &str,
    supplier_order_id: &str,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let current = supplier_orders::current(tx, supplier_order_id).await?;
    let order_status = orders::status_in(tx, order_id).await?;
    let order_cancelled = order_status.as_deref() == Some(OrderStatus::Cancelled.as_str());
    let lost_its_lines = current.is_some_and(|s| !s.is_live());
    let lines_removed = !order_cancelled
        && current == Some(SoStatus::CancelRequested)
        && every_line_removed(tx, order_id, supplier_order_id).await?;
    if order_cancelled || lost_its_lines || lines_removed {
        crate::store::tasks::open(
            tx,
            "cancel_refused",
            &format!("{supplier_order_id}.cancel_refused"),
            Some(order_id),
            None,
            if lines_removed {
                "A supplier could not cancel an order whose lines the buyer removed: stop the parcel or have it sent back"
            } else {
                "A supplier could not cancel an order it should not ship: stop the parcel or have it sent back"
            },
            json!({ "supplier_order_id": supplier_order_id, "reason": reason, "order_cancelled": order_cancelled,
                    "lines_removed": lines_removed, "supplier_order_status": current.map(SoStatus::as_str) }),
        )
        .await?;
    }
    // An after-sales cancel case that failed, or lines the buyer removed that the supplier
    // ships anyway: the supplier order goes on as acknowledged (its shipment is then applied).
    if !order_cancelled && current == Some(SoStatus::CancelRequested) {
        supplier_orders::transition_from(
            tx,
            supplier_order_id,
            &[SoStatus::CancelRequested],
            SoStatus::Accepted,
            supplier_orders::Change::default(),
        )
        .await?;
    }
    Ok(())
}

/// Every line a supplier order carries is gone from the storefront's latest copy of the order
/// (removed, or its quantity set to zero).
async fn every_line_removed(
    tx: &mut Tx,
    order_id: &str,
    supplier_order_id: &str,
) -> anyhow::Result<bool> {
    let Some(order) = orders::get_in(tx, order_id).await? else {
        return Ok(false);
    };
    let canonical = order.canonical_order()?;
    let lines = supplier_orders::line_quantities(tx, supplier_order_id).await?;
    Ok(!lines.is_empty()
        && lines.iter().all(|(id, _)| {
            canonical
                .lines
                .iter()
                .find(|l| l.external_line_id == *id)
                .is_none_or(|l| l.quantity == 0)
        }))
}

pub(super) fn anyhow_of(e: CaseError) -> anyhow::Error {
    match e {
        CaseError::Internal(e) => e,
        other => anyhow::anyhow!("{other}"),
    }
}

/// The open goods-back case a supplier report is about: the one it names, else the newest of
/// the supplier order's order.
async fn case_for_report(
    tx: &mut Tx,
    supplier_order_id: &str,
    case_id: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if let Some(id) = case_id
        && get_in(tx, id).await?.is_some()
    {
        return Ok(Some(id.to_string()));
    }
    let Some(order_id) = supplier_orders::order_of(tx, supplier_order_id).await? else {
        return Ok(None);
    };
    Ok(cases::open_goods_back(tx, &order_id).await?)
}

/// The supplier has the goods back (a `return-received` event).
/// The supplier received goods back. Goods no case announced (a parcel its carrier brought
/// back that no tracking event reported) open one: an in-transit return, from the supplier,
/// already received, for the shop to decide between a refund and a reship (its proposal says
/// which loses less).
pub async fn on_return_received(
    tx: &mut Tx,
    supplier_order_id: &str,
    case_id: Option<&str>,
    lines: &[LineQuantity],
) -> anyhow::Result<Result<Value, String>> {
    let case_id = match case_for_report(tx, supplier_order_id, case_id).await? {
        Some(id) => id,
        None => {
            let order_id = supplier_orders::order_of(tx, supplier_order_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("supplier order {supplier_order_id} vanished"))?;
            let mut new = NewCase::new(&order_id, CaseKind::ReturnRefund, Source::Supplier);
            new.return_kind = Some(ReturnKind::InTransitReturn);
            new.reason = Some(Reason::Other);
            new.note = Some("the supplier received goods back that no case announced".into());
            new.lines = lines
                .iter()
                .map(|l| CaseLine {
                    external_line_id: l.external_line_id.clone(),
                    quantity: l.quantity,
                })
                .collect();
            let case = match open(tx, new, "supplier").await {
                Ok(case) => case,
                Err(CaseError::Internal(e)) => return Err(e),
                Err(refused) => return Ok(Err(refused.to_string())),
            };
            if let Err(refused) = act(
                tx,
                &case.id,
                ActionInput::of(Action::ReturnShipped),
                "supplier",
            )
            .await
            {
                return match refused {
                    CaseError::Internal(e) => Err(e),
                    other => Ok(Err(other.to_string())),
                };
            }
            case.id
        }
    };
    match act(tx, &case_id, ActionInput::of(Action::Receive), "supplier").await {
        Ok(case) => Ok(Ok(
            json!({ "case_id": case.id, "event": "return_received", "state": case.state }),
        )),
        Err(CaseError::Internal(e)) => Err(e),
        Err(refused) => Ok(Err(refused.to_string())),
    }
}

/// The supplier inspected the goods (an `inspected` event).
pub async fn on_inspected(
    tx: &mut Tx,
    supplier_order_id: &str,
    case_id: Option<&str>,
    resellable: bool,
    defect: Option<&str>,
) -> anyhow::Result<Result<Value, String>> {
    let Some(case_id) = case_for_report(tx, supplier_order_id, case_id).await? else {
        return Ok(Err(format!(
            "no open return for supplier order {supplier_order_id}"
        )));
    };
    let mut input = ActionInput::of(Action::Inspect);
    input.resellable = Some(resellable);
    input.defect = defect.map(str::to_string);
    match act(tx, &case_id, input, "supplier").await {
        Ok(case) => Ok(Ok(
            json!({ "case_id": case.id, "event": "inspected", "state": case.state }),
        )),
        Err(CaseError::Internal(e)) => Err(e),
        Err(refused) => Ok(Err(refused.to_string())),
    }
}

/// A carrier event that opens a case (handbook 001, 002): a parcel on its way back or back with
/// its sender is an in-transit return, a refused one a refused parcel, a lost one a reship to
/// decide. Opened once per shipment and kind.
pub async fn from_carrier(
    tx: &mut Tx,
    shipment_id: &str,
    order_id: &str,
    detail: daifa_plugin_host::TrackingDetail,
) -> anyhow::Result<Option<String>> {
    use daifa_plugin_host::TrackingDetail as D;
    let (kind, return_kind, reason, received) = match detail {
        D::ReturningToSender => (
            CaseKind::ReturnRefund,
            Some(ReturnKind::InTransitReturn),
            Reason::Other,
            false,
        ),
        D::ReturnedToSender => (
            CaseKind::ReturnRefund,
            Some(ReturnKind::InTransitReturn),
            Reason::Other,
            true,
        ),
        D::Refused => (
            CaseKind::ReturnRefund,
            Some(ReturnKind::RefusedParcel),
            Reason::Other,
            false,
        ),
        D::Lost => (CaseKind::Reship, None, Reason::Lost, false),
        _ => return Ok(None),
    };
    let lines: Vec<CaseLine> = shipments::lines_in(tx, shipment_id)
        .await?
        .into_iter()
        .map(|l| CaseLine {
            external_line_id: l.external_line_id,
            quantity: l.quantity,
        })
        .collect();
    let external = format!(
        "carrier:{shipment_id}:{}",
        match kind {
            CaseKind::Reship => "lost",
            _ => "return",
        }
    );
    let case_id = match cases::find_by_external_id(tx, order_id, &external).await? {
        Some(id) => id,
        None => {
            let mut new = NewCase::new(order_id, kind, Source::Carrier);
            new.return_kind = return_kind;
            new.reason = Some(reason);
            new.lines = lines;
            new.shipment_id = Some(shipment_id.to_string());
            new.external_id = Some(external);
            match open(tx, new, "carrier").await {
                Ok(case) => case.id,
                Err(CaseError::Internal(e)) => return Err(e),
                Err(refused) => {
                    tracing::warn!(shipment_id, error = %refused, "a carrier event could not open a case");
                    return Ok(None);
                }
            }
        }
    };
    // The carrier brings it back unasked: the case moves on its own.
    let case = get_in(tx, &case_id).await?;
    if let Some(case) = case
        && case.kind == CaseKind::ReturnRefund
    {
        if case.state == CaseState::Requested {
            act(
                tx,
                &case.id,
                ActionInput::of(Action::ReturnShipped),
                "carrier",
            )
            .await
            .map_err(anyhow_of)?;
        }
        if received
            && get_in(tx, &case.id)
                .await?
                .is_some_and(|c| c.state == CaseState::ReturnInTransit)
        {
            act(tx, &case.id, ActionInput::of(Action::Receive), "carrier")
                .await
                .map_err(anyhow_of)?;
        }
    }
    Ok(Some(case_id))
}

/// A shipment came for a reship or an exchange's replacement: its case is done.
pub async fn on_replacement_shipped(tx: &mut Tx, supplier_order_id: &str) -> anyhow::Result<()> {
    if let Some(case_id) = cases::shipped_replacement(tx, supplier_order_id).await? {
        act(tx, &case_id, ActionInput::of(Action::Close), "supplier")
            .await
            .map_err(anyhow_of)?;
    }
    Ok(())
}
