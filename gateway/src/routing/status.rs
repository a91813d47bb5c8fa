//! A supplier order's status and the one table of the moves it may make.
//!
//! Every change of a supplier order's status is a compare-and-set against this table
//! (`update … where id = $1 and status in (the statuses the move is allowed from)`), so a stale
//! read can never overwrite what another path wrote meanwhile: a push answered after the
//! supplier's `accepted` callback, a deadline firing after the acknowledgement, a `shipped`
//! callback after a cancellation. A move that lost such a race is an outcome the caller
//! handles ([`Moved::No`] with the status found), never a silent overwrite.

use crate::db::{Tx, now_ms};
use serde::Serialize;
use sqlx::AssertSqlSafe;

/// Where a supplier order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SoStatus {
    /// Routed, not pushed yet (or its push is being retried).
    Pending,
    /// Waiting for the operator before it is pushed: the supplier it replaces may ship after
    /// all (a late acknowledgement or shipment of a failed-over supplier order).
    Held,
    /// Pushed; the supplier has not acknowledged it yet.
    Submitted,
    /// The supplier acknowledged it.
    Accepted,
    /// The supplier shipped (some of) it.
    Shipped,
    /// The supplier was asked to cancel it and has not answered yet.
    CancelRequested,
    /// Cancelled: never pushed, or cancelled at the supplier's.
    Cancelled,
    /// The supplier refused it; its lines went to the next offer.
    Rejected,
    /// The supplier did not acknowledge it in time; its lines went to the next offer.
    TimedOut,
    /// Its push dead-lettered; its lines went to the next offer.
    Undeliverable,
}

impl SoStatus {
    pub const ALL: [SoStatus; 10] = [
        Self::Pending,
        Self::Held,
        Self::Submitted,
        Self::Accepted,
        Self::Shipped,
        Self::CancelRequested,
        Self::Cancelled,
        Self::Rejected,
        Self::TimedOut,
        Self::Undeliverable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Held => "held",
            Self::Submitted => "submitted",
            Self::Accepted => "accepted",
            Self::Shipped => "shipped",
            Self::CancelRequested => "cancel_requested",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::TimedOut => "timed_out",
            Self::Undeliverable => "undeliverable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The statuses a supplier order may move to `self` from: the whole transition table.
    pub fn allowed_from(self) -> &'static [SoStatus] {
        use SoStatus::*;
        match self {
            // An operator's retry of a dead push revives it; a released hold lets it go.
            Pending => &[Undeliverable, Held],
            Held => &[Pending],
            // From Held only for a push that was in flight when the hold came: it is with the
            // supplier whatever the hold says (a push job never starts from Held).
            Submitted => &[Pending, Held],
            // A supplier may acknowledge before its answer to the push arrives. From Held: a
            // push in flight when the hold came. From CancelRequested: the supplier could not cancel and the order goes on (an
            // after-sales cancel case that failed).
            Accepted => &[Pending, Held, Submitted, CancelRequested],
            // Several parcels: shipped again. A supplier may ship before acknowledging.
            Shipped => &[Pending, Submitted, Accepted, Shipped],
            // From Cancelled: a supplier order cancelled as "never pushed" while its push was in
            // flight, found to have reached the supplier after all.
            CancelRequested => &[Submitted, Accepted, Cancelled],
            // Shipped: the supplier intercepted the parcel (an after-sales cancel case).
            Cancelled => &[Pending, Held, Submitted, Accepted, CancelRequested, Shipped],
            Rejected => &[Pending, Submitted, Accepted],
            TimedOut => &[Submitted],
            Undeliverable => &[Pending],
        }
    }

    /// Whether the supplier order holds its lines: they are not routed again, and the supplier
    /// may ship them.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Self::Pending
                | Self::Held
                | Self::Submitted
                | Self::Accepted
                | Self::Shipped
                | Self::CancelRequested
        )
    }

    /// Whether the supplier has (or may have) the order: it was pushed, or a push of it was
    /// in flight.
    pub fn was_pushed(self) -> bool {
        matches!(
            self,
            Self::Submitted | Self::Accepted | Self::Shipped | Self::CancelRequested
        )
    }

    /// The SQL list of statuses, for `status in (…)`.
    pub fn sql_list(statuses: &[SoStatus]) -> String {
        statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a compare-and-set did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    Yes,
    /// The supplier order was not in a status the move is allowed from: it is in this one
    /// (none when it does not exist).
    No(Option<SoStatus>),
}

impl Moved {
    pub fn happened(self) -> bool {
        self == Moved::Yes
    }
}

/// Optional columns a move writes with the status.
#[derive(Debug, Default, Clone, Copy)]
pub struct Change<'a> {
    /// The supplier's own id of the order (kept when none).
    pub external_id: Option<&'a str>,
    /// Why (kept when none).
    pub reason: Option<&'a str>,
}

/// Moves a supplier order to `to` if the table allows it from the status it is in now.
pub async fn transition(
    tx: &mut Tx,
    id: &str,
    to: SoStatus,
    change: Change<'_>,
) -> sqlx::Result<Moved> {
    transition_from(tx, id, to.allowed_from(), to, change).await
}

/// Moves a supplier order to `to` only from one of `from` (each of which the table must
/// allow): a caller that knows more than the table narrows it.
pub async fn transition_from(
    tx: &mut Tx,
    id: &str,
    from: &[SoStatus],
    to: SoStatus,
    change: Change<'_>,
) -> sqlx::Result<Moved> {
    debug_assert!(
        from.iter().all(|f| to.allowed_from().contains(f)),
        "{from:?} → {to:?} is not in the table"
    );
    let updated = sqlx::query(AssertSqlSafe(format!(
        "update supplier_orders set status = $1, external_id = coalesce($2, external_id), reason = coalesce($3, reason), updated_at_ms = $4 \
         where id = $5 and status in ({})",
        SoStatus::sql_list(from)
    )))
    .bind(to.as_str())
    .bind(change.external_id)
    .bind(change.reason)
    .bind(now_ms())
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 1 {
        return Ok(Moved::Yes);
    }
    Ok(Moved::No(current(tx, id).await?))
}

/// Records the supplier's own id of the order without moving it.
pub async fn set_external_id(tx: &mut Tx, id: &str, external_id: &str) -> sqlx::Result<()> {
    sqlx::query("update supplier_orders set external_id = $1, updated_at_ms = $2 where id = $3")
        .bind(external_id)
        .bind(now_ms())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The status a supplier order is in, read inside the transaction.
pub async fn current(tx: &mut Tx, id: &str) -> sqlx::Result<Option<SoStatus>> {
    let status: Option<String> =
        sqlx::query_scalar("select status from supplier_orders where id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(status.as_deref().and_then(SoStatus::parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_keeps_the_promises() {
        use SoStatus::*;
        for to in SoStatus::ALL {
            for from in to.allowed_from() {
                // Nothing leaves a cancellation or a fail-over except an operator's revival of
                // a dead push (which checks that no other supplier order took its lines), and a
                // cancellation that turns out to need the supplier's (a push was in flight).
                assert!(
                    !matches!(from, Rejected | TimedOut)
                        && (*from != Cancelled || to == CancelRequested)
                        && (*from != Undeliverable || to == Pending),
                    "{from:?} → {to:?} would bring back a supplier order that lost its lines"
                );
            }
        }
        // An acknowledgement never overwrites a shipment or a fail-over (a supplier's callback
        // narrows it to Pending and Submitted: not over a cancellation request either); a
        // deadline only fails over what is still unacknowledged.
        assert_eq!(
            Accepted.allowed_from(),
            &[Pending, Held, Submitted, CancelRequested]
        );
        assert_eq!(TimedOut.allowed_from(), &[Submitted]);
        // Nothing is shipped from a status whose lines went elsewhere or are being cancelled.
        for from in Shipped.allowed_from() {
            assert!(from.is_live() && *from != CancelRequested && *from != Held);
        }
        // Pushed from Pending, or found pushed after a hold came during the push.
        assert_eq!(Submitted.allowed_from(), &[Pending, Held]);
        // Every status is reachable from Pending.
        let mut reached = std::collections::BTreeSet::from([Pending]);
        loop {
            let before = reached.len();
            for to in SoStatus::ALL {
                if to.allowed_from().iter().any(|f| reached.contains(f)) {
                    reached.insert(to);
                }
            }
            if reached.len() == before {
                break;
            }
        }
        assert_eq!(reached.len(), SoStatus::ALL.len());
    }

    #[test]
    fn names_round_trip() {
        for s in SoStatus::ALL {
            assert_eq!(SoStatus::parse(s.as_str()), Some(s));
        }
    }
}
