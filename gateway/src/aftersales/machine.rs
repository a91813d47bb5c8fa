//! One explicit state machine per case kind: the states a case of that kind passes through and
//! the actions that move it, nothing else. An action not allowed in a case's state is refused
//! with the reason (the API answers 409). Pure: no database, no clock.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What the customer (or the carrier, or the shop) asks for (handbooks 001, 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// Cancel the order; intercept the parcel when it has left.
    Cancel,
    /// Money back, no goods back.
    RefundOnly,
    /// A partial "price difference" refund: the customer keeps goods with a small defect.
    PartialCompensation,
    /// Goods back, then money back.
    ReturnRefund,
    /// Goods back, a replacement out.
    Exchange,
    /// Send again: a missing, wrong or lost item.
    Reship,
    /// Repair within the warranty.
    WarrantyRepair,
    /// Repair after the warranty, paid by the customer.
    PaidMaintenance,
}

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    Requested,
    /// A paid maintenance quoted to the customer, waiting for the customer's yes.
    Quoted,
    Approved,
    /// The supplier (or carrier) was asked to stop the order or the parcel.
    Intercepting,
    /// Stopped: nothing left the supplier, or the parcel comes back.
    Intercepted,
    /// It could not be stopped: it goes on to the customer (a return may follow).
    InterceptFailed,
    /// The goods are on their way back.
    ReturnInTransit,
    /// The goods are back with the shop or the supplier.
    Received,
    /// Inspected: resellable, or a quality problem confirmed.
    Inspected,
    /// Under repair.
    Repairing,
    /// Repaired, or the replacement, reship or repaired goods shipped to the customer.
    Shipped,
    /// The money went back to the customer.
    Refunded,
    Rejected,
    Closed,
}

/// What moves a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Reject,
    /// Quote a paid maintenance.
    Quote,
    /// Ask the supplier or carrier to stop it.
    Intercept,
    /// The supplier or carrier stopped it.
    Intercepted,
    /// It could not be stopped.
    InterceptFailed,
    /// The customer (or carrier) sent the goods back.
    ReturnShipped,
    /// The goods arrived back.
    Receive,
    /// The goods were inspected.
    Inspect,
    StartRepair,
    /// Repaired goods, a replacement or a reship left for the customer.
    Ship,
    Refund,
    Close,
}

impl fmt::Display for CaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&name(self))
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&name(self))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&name(self))
    }
}

/// A value's serde name (`return_refund`): what the API and the table say.
pub fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

impl CaseKind {
    pub const ALL: [CaseKind; 8] = [
        Self::Cancel,
        Self::RefundOnly,
        Self::PartialCompensation,
        Self::ReturnRefund,
        Self::Exchange,
        Self::Reship,
        Self::WarrantyRepair,
        Self::PaidMaintenance,
    ];

    /// Whether goods come back in this kind of case.
    pub fn goods_come_back(self) -> bool {
        matches!(
            self,
            Self::ReturnRefund | Self::Exchange | Self::WarrantyRepair | Self::PaidMaintenance
        )
    }

    /// Whether money goes back in this kind of case.
    pub fn refunds(self) -> bool {
        matches!(
            self,
            Self::Cancel | Self::RefundOnly | Self::PartialCompensation | Self::ReturnRefund
        )
    }
}

impl CaseState {
    pub const ALL: [CaseState; 14] = [
        Self::Requested,
        Self::Quoted,
        Self::Approved,
        Self::Intercepting,
        Self::Intercepted,
        Self::InterceptFailed,
        Self::ReturnInTransit,
        Self::Received,
        Self::Inspected,
        Self::Repairing,
        Self::Shipped,
        Self::Refunded,
        Self::Rejected,
        Self::Closed,
    ];

    /// A case in this state is over.
    pub fn is_final(self) -> bool {
        self == Self::Closed
    }
}

impl Action {
    pub const ALL: [Action; 13] = [
        Self::Approve,
        Self::Reject,
        Self::Quote,
        Self::Intercept,
        Self::Intercepted,
        Self::InterceptFailed,
        Self::ReturnShipped,
        Self::Receive,
        Self::Inspect,
        Self::StartRepair,
        Self::Ship,
        Self::Refund,
        Self::Close,
    ];
}

use Action as A;
use CaseState as S;

/// The transitions of each kind: (from, action, to). What is not listed is refused.
fn table(kind: CaseKind) -> &'static [(CaseState, Action, CaseState)] {
    match kind {
        // requested → approved → intercepting → intercepted → refunded → closed; a parcel that
        // could not be stopped goes on, and the case closes (a return may be opened).
        CaseKind::Cancel => &[
            (S::Requested, A::Approve, S::Approved),
            (S::Requested, A::Reject, S::Rejected),
            (S::Approved, A::Intercept, S::Intercepting),
            // Nothing was pushed to a supplier yet: stopped at once.
            (S::Approved, A::Intercepted, S::Intercepted),
            (S::Intercepting, A::Intercepted, S::Intercepted),
            (S::Intercepting, A::InterceptFailed, S::InterceptFailed),
            (S::Intercepted, A::Refund, S::Refunded),
            (S::InterceptFailed, A::Close, S::Closed),
            (S::Refunded, A::Close, S::Closed),
            (S::Rejected, A::Close, S::Closed),
        ],
        CaseKind::RefundOnly | CaseKind::PartialCompensation => &[
            (S::Requested, A::Approve, S::Approved),
            (S::Requested, A::Reject, S::Rejected),
            (S::Approved, A::Refund, S::Refunded),
            (S::Refunded, A::Close, S::Closed),
            (S::Rejected, A::Close, S::Closed),
        ],
        // requested → approved → return in transit → received → inspected → refunded | rejected
        // → closed.
        CaseKind::ReturnRefund => &[
            (S::Requested, A::Approve, S::Approved),
            (S::Requested, A::Reject, S::Rejected),
            (S::Approved, A::ReturnShipped, S::ReturnInTransit),
            // An in-transit return or a refused parcel: the carrier brings it back unasked.
            (S::Requested, A::ReturnShipped, S::ReturnInTransit),
            (S::Approved, A::Receive, S::Received),
            (S::ReturnInTransit, A::Receive, S::Received),
            (S::Received, A::Inspect, S::Inspected),
            (S::Inspected, A::Refund, S::Refunded),
            (S::Inspected, A::Reject, S::Rejected),
            (S::Refunded, A::Close, S::Closed),
            (S::Rejected, A::Close, S::Closed),
        ],
        // requested → approved → return in transit → received → inspected → replacement
        // shipped → closed.
        CaseKind::Exchange => &[
            (S::Requested, A::Approve, S::Approved),
            (S::Requested, A::Reject, S::Rejected),
            (S::Approved, A::ReturnShipped, S::ReturnInTransit),
            (S::Approved, A::Receive, S::Received),
            (S::ReturnInTransit, A::Receive, S::Received),
            (S::Received, A::Inspect, S::Inspected),
            (S::Inspected, A::Ship, S::Shipped),
            (S::Inspected, A::Reject, S::Rejected),
            (S::Shipped, A::Close, S::Closed),
            (S::Rejected, A::Close, S::Closed),
        ],
        CaseKind::Reship => &[
            (S::Requested, A::Approve, S::Approved),
            (S::Requested, A::Reject, S::Rejected),
            (S::Approved, A::Ship, S::Shipped),
            (S::Shipped, A::Close, S::Closed),
            (S::Rejected, A::Close, S::Closed),
        ],
        // requested → approved → return in transit → received → repairing → shipped back →
        // closed; the paid kind is quoted first.
        CaseKind::WarrantyRepair | CaseKind::PaidMaintenance => {
            if kind == CaseKind::PaidMaintenance {
                &[
                    (S::Requested, A::Quote, S::Quoted),
                    (S::Requested, A::Reject, S::Rejected),
                    (S::Quoted, A::Approve, S::Approved),
                    (S::Quoted, A::Reject, S::Rejected),
                    (S::Approved, A::ReturnShipped, S::ReturnInTransit),
                    (S::Approved, A::Receive, S::Received),
                    (S::ReturnInTransit, A::Receive, S::Received),
                    (S::Received, A::StartRepair, S::Repairing),
                    (S::Repairing, A::Ship, S::Shipped),
                    (S::Shipped, A::Close, S::Closed),
                    (S::Rejected, A::Close, S::Closed),
                ]
            } else {
                &[
                    (S::Requested, A::Approve, S::Approved),
                    (S::Requested, A::Reject, S::Rejected),
                    (S::Approved, A::ReturnShipped, S::ReturnInTransit),
                    (S::Approved, A::Receive, S::Received),
                    (S::ReturnInTransit, A::Receive, S::Received),
                    (S::Received, A::StartRepair, S::Repairing),
                    // Not repairable: the warranty does not cover it.
                    (S::Received, A::Reject, S::Rejected),
                    (S::Repairing, A::Ship, S::Shipped),
                    (S::Shipped, A::Close, S::Closed),
                    (S::Rejected, A::Close, S::Closed),
                ]
            }
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {kind} case that is {state} cannot {action}; it can: {allowed}")]
pub struct InvalidTransition {
    pub kind: CaseKind,
    pub state: CaseState,
    pub action: Action,
    /// The actions allowed in that state, comma-separated (none: "nothing, it is closed").
    pub allowed: String,
}

/// The state `action` moves a `kind` case from `state` to.
pub fn next(
    kind: CaseKind,
    state: CaseState,
    action: Action,
) -> Result<CaseState, InvalidTransition> {
    table(kind)
        .iter()
        .find(|(from, a, _)| *from == state && *a == action)
        .map(|(_, _, to)| *to)
        .ok_or_else(|| {
            let allowed: Vec<String> = allowed(kind, state).iter().map(name).collect();
            InvalidTransition {
                kind,
                state,
                action,
                allowed: if allowed.is_empty() {
                    "nothing, it is closed".into()
                } else {
                    allowed.join(", ")
                },
            }
        })
}

/// The actions a `kind` case in `state` accepts.
pub fn allowed(kind: CaseKind, state: CaseState) -> Vec<Action> {
    table(kind)
        .iter()
        .filter(|(from, _, _)| *from == state)
        .map(|(_, a, _)| *a)
        .collect()
}

/// The state a case starts in.
pub fn initial(kind: CaseKind) -> CaseState {
    let _ = kind;
    CaseState::Requested
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every state of a kind's table is reachable from `requested`, and `closed` from every
    /// reachable state: no case can get stuck.
    #[test]
    fn every_machine_reaches_closed_from_everywhere() {
        for kind in CaseKind::ALL {
            let mut reachable = BTreeSet::from([initial(kind)]);
            loop {
                let before = reachable.len();
                for (from, _, to) in table(kind) {
                    if reachable.contains(from) {
                        reachable.insert(*to);
                    }
                }
                if reachable.len() == before {
                    break;
                }
            }
            assert!(reachable.contains(&CaseState::Closed), "{kind}");
            for state in &reachable {
                let mut seen = BTreeSet::from([*state]);
                loop {
                    let before = seen.len();
                    for (from, _, to) in table(kind) {
                        if seen.contains(from) {
                            seen.insert(*to);
                        }
                    }
                    if seen.len() == before {
                        break;
                    }
                }
                assert!(
                    seen.contains(&CaseState::Closed),
                    "{kind}: {state} cannot close"
                );
            }
            // A closed case accepts nothing.
            assert!(allowed(kind, CaseState::Closed).is_empty(), "{kind}");
            // No two transitions from a state share an action.
            let pairs: BTreeSet<(CaseState, Action)> =
                table(kind).iter().map(|(f, a, _)| (*f, *a)).collect();
            assert_eq!(pairs.len(), table(kind).len(), "{kind}");
        }
    }

    #[test]
    fn the_return_refund_path_is_the_handbooks() {
        let path = [
            (A::Approve, S::Approved),
            (A::ReturnShipped, S::ReturnInTransit),
            (A::Receive, S::Received),
            (A::Inspect, S::Inspected),
            (A::Refund, S::Refunded),
            (A::Close, S::Closed),
        ];
        let mut state = initial(CaseKind::ReturnRefund);
        for (action, expected) in path {
            state = next(CaseKind::ReturnRefund, state, action).unwrap();
            assert_eq!(state, expected);
        }
        let refused = next(CaseKind::ReturnRefund, S::Approved, A::Refund).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "a return_refund case that is approved cannot refund; it can: return_shipped, receive"
        );
        assert!(
            next(CaseKind::Reship, S::Closed, A::Approve)
                .unwrap_err()
                .to_string()
                .ends_with("it can: nothing, it is closed")
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::select;

        fn kinds() -> impl Strategy<Value = CaseKind> {
            select(CaseKind::ALL.to_vec())
        }

        fn actions() -> impl Strategy<Value = Vec<Action>> {
            proptest::collection::vec(select(Action::ALL.to_vec()), 0..60)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever is asked, in whatever order, a case only ever moves along its kind's
            /// table: an action is taken exactly when the table lists it from the current
            /// state, a refused one leaves the state as it was, and a closed case takes nothing.
            #[test]
            fn only_listed_transitions_are_taken(kind in kinds(), asked in actions()) {
                let mut state = initial(kind);
                for action in asked {
                    let listed = table(kind)
                        .iter()
                        .find(|(from, a, _)| *from == state && *a == action)
                        .map(|(_, _, to)| *to);
                    match next(kind, state, action) {
                        Ok(to) => {
                            prop_assert_eq!(Some(to), listed);
                            prop_assert!(allowed(kind, state).contains(&action));
                            state = to;
                        }
                        Err(refused) => {
                            prop_assert_eq!(listed, None);
                            prop_assert!(!allowed(kind, state).contains(&action));
                            prop_assert_eq!(refused.state, state);
                            prop_assert!(refused.to_string().contains(&name(&action)));
                        }
                    }
                    if state == CaseState::Closed {
                        prop_assert!(allowed(kind, state).is_empty());
                    }
                }
            }

            /// Money goes back at most once per case, and only in the kinds that refund: no
            /// path through a machine refunds twice (the amount of each refund is bounded by
            /// what was paid in `act`, over all cases of the order).
            #[test]
            fn a_case_refunds_at_most_once(kind in kinds(), asked in actions()) {
                let mut state = initial(kind);
                let mut refunds = 0;
                for action in asked {
                    if let Ok(to) = next(kind, state, action) {
                        if action == Action::Refund {
                            refunds += 1;
                        }
                        state = to;
                    }
                }
                prop_assert!(refunds <= 1, "{kind} refunded {refunds} times");
                if !kind.refunds() {
                    prop_assert_eq!(refunds, 0, "{} refunded", kind);
                }
            }
        }
    }
}
