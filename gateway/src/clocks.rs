//! The service clocks of the handbooks (ship within 24 h of payment, follow tracking up after 7
//! days express / 30 postal, no tracking after 40 days, answer a complaint within a day…), set
//! as jobs due at the policy's time. Setting a clock is here, below every stage that sets one;
//! what a clock does when it fires (a task when what it watches did not happen) is the
//! after-sales stage's (`aftersales/clocks.rs`). The timings are `AfterSalesPolicy`'s.

use crate::db::{Tx, ms};
use crate::policy::AfterSalesPolicy;
use crate::store::jobs::{self, JobKind, NewJob};

/// What a clock watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// An order ships within `ship_within` of payment.
    Ship,
    /// A shipment is marked shipped on the storefront within `mark_shipped_within`.
    MarkShipped,
    /// Tracking is followed up `follow_up_express` / `follow_up_postal` after shipping.
    FollowUp,
    /// No tracking and not delivered after `no_tracking_after`.
    NoTracking,
    /// Not delivered in the promised time: extend the storefront's receipt window.
    DeliveryPromise,
    /// A refund is paid within `refund_within` of the request.
    Refund,
    /// A complaint (a case) is answered within `complaint_within`.
    Complaint,
    /// An exchange's replacement ships within `replacement_within` of receiving the goods.
    Replacement,
    /// A stock-out's customer is contacted (the routing policy's `stock_out_contact`).
    StockOutContact,
}

/// The job kinds of the clocks.
pub const KINDS: [JobKind; 9] = {
    let mut kinds = [JobKind::ClockShip; 9];
    let mut i = 0;
    while i < kinds.len() {
        kinds[i] = Clock::ALL[i].job();
        i += 1;
    }
    kinds
};

impl Clock {
    pub const ALL: [Clock; 9] = [
        Self::Ship,
        Self::MarkShipped,
        Self::FollowUp,
        Self::NoTracking,
        Self::DeliveryPromise,
        Self::Refund,
        Self::Complaint,
        Self::Replacement,
        Self::StockOutContact,
    ];

    const fn job(self) -> JobKind {
        match self {
            Self::Ship => JobKind::ClockShip,
            Self::MarkShipped => JobKind::ClockMarkShipped,
            Self::FollowUp => JobKind::ClockFollowUp,
            Self::NoTracking => JobKind::ClockNoTracking,
            Self::DeliveryPromise => JobKind::ClockDeliveryPromise,
            Self::Refund => JobKind::ClockRefund,
            Self::Complaint => JobKind::ClockComplaint,
            Self::Replacement => JobKind::ClockReplacement,
            Self::StockOutContact => JobKind::ClockStockOutContact,
        }
    }

    pub fn of(kind: JobKind) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.job() == kind)
    }
}

/// Sets a clock: a job due at `at_ms` about `subject` (an order, a shipment, a case, a hold).
pub async fn schedule(
    tx: &mut Tx,
    clock: Clock,
    subject: &str,
    order_id: &str,
    at_ms: i64,
) -> sqlx::Result<bool> {
    Ok(schedule_many(tx, subject, order_id, &[(clock, at_ms)]).await? == 1)
}

/// Starts clocks of one subject together (one statement); how many were not running already.
async fn schedule_many(
    tx: &mut Tx,
    subject: &str,
    order_id: &str,
    clocks: &[(Clock, i64)],
) -> sqlx::Result<u64> {
    jobs::enqueue_many_at(tx, clock_jobs(subject, order_id, clocks)).await
}

fn clock_jobs<'a>(
    subject: &'a str,
    order_id: &'a str,
    clocks: &[(Clock, i64)],
) -> Vec<(NewJob<'a>, i64)> {
    clocks
        .iter()
        .map(|&(clock, at_ms)| {
            let kind = clock.job();
            let job = NewJob {
                kind,
                idempotency_key: format!("{}.{subject}", kind.as_str()),
                subject_id: subject,
                order_id,
                connection_id: "",
            };
            (job, at_ms)
        })
        .collect()
}

/// The clocks of a paid order: shipped within a day, marked shipped within three.
pub async fn on_order_paid(
    tx: &mut Tx,
    policy: &AfterSalesPolicy,
    order_id: &str,
    paid_at_ms: i64,
) -> sqlx::Result<()> {
    let clocks = [
        (Clock::Ship, paid_at_ms + ms(policy.ship_within)),
        (
            Clock::MarkShipped,
            paid_at_ms + ms(policy.mark_shipped_within),
        ),
    ];
    // A clock already running (a later copy that says paid again) is left as it is.
    jobs::add(tx, clock_jobs(order_id, order_id, &clocks)).await
}

/// The clocks of a shipment: the follow-up (7 days express, 30 postal), the promised time,
/// and no tracking after 40 days.
pub async fn on_shipped(
    tx: &mut Tx,
    policy: &AfterSalesPolicy,
    shipment_id: &str,
    order_id: &str,
    carrier: &str,
    shipped_at_ms: i64,
) -> sqlx::Result<()> {
    let follow_up = if policy.is_postal(carrier) {
        policy.follow_up_postal
    } else {
        policy.follow_up_express
    };
    schedule(
        tx,
        Clock::FollowUp,
        shipment_id,
        order_id,
        shipped_at_ms + ms(follow_up),
    )
    .await?;
    schedule(
        tx,
        Clock::DeliveryPromise,
        shipment_id,
        order_id,
        shipped_at_ms + ms(policy.delivery_promise),
    )
    .await?;
    schedule(
        tx,
        Clock::NoTracking,
        shipment_id,
        order_id,
        shipped_at_ms + ms(policy.no_tracking_after),
    )
    .await?;
    Ok(())
}

/// The clocks of a new case: answered within a day; refunded within a day when it refunds.
pub async fn on_case_opened(
    tx: &mut Tx,
    policy: &AfterSalesPolicy,
    case_id: &str,
    order_id: &str,
    refunds: bool,
    opened_at_ms: i64,
) -> sqlx::Result<()> {
    schedule(
        tx,
        Clock::Complaint,
        case_id,
        order_id,
        opened_at_ms + ms(policy.complaint_within),
    )
    .await?;
    if refunds {
        schedule(
            tx,
            Clock::Refund,
            case_id,
            order_id,
            opened_at_ms + ms(policy.refund_within),
        )
        .await?;
    }
    Ok(())
}
