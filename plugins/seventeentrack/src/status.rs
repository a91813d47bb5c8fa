//! 17TRACK's statuses and sub-statuses → the canonical `tracking-status` and `tracking-detail`.
//!
//! 17TRACK v2.2 reports a main status (`latest_status.status`: `NotFound`, `InTransit`, ...) and
//! a sub-status named `<Main>_<Reason>` (`Exception_Returning`). Events carry a `stage`, which is
//! a milestone name (`PickedUp`, `Delivered`, `Returning`) or a sub-status, and sometimes a
//! `sub_status`. New values appear over time: an unknown sub-status keeps its main status with no
//! detail, and nothing here fails.

use daifa_plugin_sdk::types::{TrackingDetail, TrackingStatus};

/// A status and what exactly happened, when 17TRACK says.
pub type Mapped = (TrackingStatus, Option<TrackingDetail>);

/// A main status (`latest_status.status`).
pub fn main_status(status: &str) -> Option<TrackingStatus> {
    Some(match status.trim() {
        "NotFound" => TrackingStatus::NotFound,
        "InfoReceived" => TrackingStatus::InfoReceived,
        "InTransit" => TrackingStatus::InTransit,
        "Expired" => TrackingStatus::Expired,
        "AvailableForPickup" => TrackingStatus::AvailableForPickup,
        "OutForDelivery" => TrackingStatus::OutForDelivery,
        "DeliveryFailure" => TrackingStatus::DeliveryFailed,
        "Delivered" => TrackingStatus::Delivered,
        "Exception" => TrackingStatus::Exception,
        _ => return None,
    })
}

/// The detail a sub-status gives, when it is one the gateway acts on.
pub fn detail(sub_status: &str) -> Option<TrackingDetail> {
    Some(match sub_status.trim() {
        "InTransit_CustomsProcessing" => TrackingDetail::CustomsProcessing,
        "InTransit_CustomsRequiringInformation" => TrackingDetail::CustomsHeld,
        "InTransit_CustomsReleased" => TrackingDetail::CustomsReleased,
        "Exception_Returning" => TrackingDetail::ReturningToSender,
        "Exception_Returned" => TrackingDetail::ReturnedToSender,
        "Exception_Rejected" | "DeliveryFailure_Rejected" => TrackingDetail::Refused,
        "Exception_Lost" => TrackingDetail::Lost,
        // Some integrations report `_Damaged`; 17TRACK's table says `_Damage`.
        "Exception_Damage" | "Exception_Damaged" => TrackingDetail::Damaged,
        "DeliveryFailure_InvalidAddress" => TrackingDetail::AddressIssue,
        "DeliveryFailure_NoBody" | "Exception_NoBody" => TrackingDetail::RecipientUnavailable,
        "Exception_Delayed" => TrackingDetail::Delayed,
        // `*_Other`, `*_Security`, `Exception_Destroyed`, `Exception_Cancel`, the `InTransit_*`
        // stages and what 17TRACK adds later: the main status says enough.
        _ => return None,
    })
}

/// A sub-status on its own: its main status is the part before `_` (`InfoReceived` has none).
fn sub_status(sub_status: &str) -> Option<Mapped> {
    let sub_status = sub_status.trim();
    let main = sub_status.split('_').next().unwrap_or(sub_status);
    main_status(main).map(|status| (status, detail(sub_status)))
}

/// The parcel's status from `latest_status`. Without a status 17TRACK knows nothing yet
/// (`NotFound`); a main status it added after this plugin was written is taken for in transit,
/// the state in which a parcel spends most of its life, rather than failing the update.
pub fn latest(status: Option<&str>, sub: Option<&str>) -> Mapped {
    let status = status.map(str::trim).filter(|s| !s.is_empty());
    let sub = sub.map(str::trim).filter(|s| !s.is_empty());
    if let Some(main) = status.and_then(main_status) {
        return (main, sub.and_then(detail));
    }
    if let Some(mapped) = sub.and_then(sub_status) {
        return mapped;
    }
    match status {
        None => (TrackingStatus::NotFound, None),
        Some(_) => (TrackingStatus::InTransit, None),
    }
}

/// The status of one event from its own `sub_status` or `stage`, or `None` when it has neither
/// (most carrier scans) or only values this plugin does not know.
pub fn event(stage: Option<&str>, sub: Option<&str>) -> Option<Mapped> {
    if let Some(mapped) = sub.filter(|s| !s.trim().is_empty()).and_then(sub_status) {
        return Some(mapped);
    }
    let stage = stage.map(str::trim).filter(|s| !s.is_empty())?;
    // The milestone names of `track_info.milestone[].key_stage`.
    let milestone = match stage {
        "PickedUp" | "Departure" | "Arrival" => Some((TrackingStatus::InTransit, None)),
        "Returning" => Some((
            TrackingStatus::Exception,
            Some(TrackingDetail::ReturningToSender),
        )),
        "Returned" => Some((
            TrackingStatus::Exception,
            Some(TrackingDetail::ReturnedToSender),
        )),
        _ => None,
    };
    milestone.or_else(|| sub_status(stage))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrackingDetail as D;
    use TrackingStatus as S;

    #[test]
    fn maps_every_main_status() {
        let cases = [
            ("NotFound", S::NotFound),
            ("InfoReceived", S::InfoReceived),
            ("InTransit", S::InTransit),
            ("Expired", S::Expired),
            ("AvailableForPickup", S::AvailableForPickup),
            ("OutForDelivery", S::OutForDelivery),
            ("DeliveryFailure", S::DeliveryFailed),
            ("Delivered", S::Delivered),
            ("Exception", S::Exception),
        ];
        for (status, expected) in cases {
            assert_eq!(latest(Some(status), None), (expected, None), "{status}");
        }
    }

    #[test]
    fn maps_sub_statuses_to_details() {
        // Every sub-status of statuses-and-substatuses.txt, sections A and B.
        let cases: &[(&str, &str, S, Option<D>)] = &[
            ("NotFound", "NotFound_Other", S::NotFound, None),
            ("NotFound", "NotFound_InvalidCode", S::NotFound, None),
            ("InfoReceived", "InfoReceived", S::InfoReceived, None),
            ("InTransit", "InTransit_PickedUp", S::InTransit, None),
            ("InTransit", "InTransit_Other", S::InTransit, None),
            ("InTransit", "InTransit_Departure", S::InTransit, None),
            ("InTransit", "InTransit_Arrival", S::InTransit, None),
            (
                "InTransit",
                "InTransit_CustomsProcessing",
                S::InTransit,
                Some(D::CustomsProcessing),
            ),
            (
                "InTransit",
                "InTransit_CustomsReleased",
                S::InTransit,
                Some(D::CustomsReleased),
            ),
            (
                "InTransit",
                "InTransit_CustomsRequiringInformation",
                S::InTransit,
                Some(D::CustomsHeld),
            ),
            ("Expired", "Expired_Other", S::Expired, None),
            (
                "AvailableForPickup",
                "AvailableForPickup_Other",
                S::AvailableForPickup,
                None,
            ),
            (
                "OutForDelivery",
                "OutForDelivery_Other",
                S::OutForDelivery,
                None,
            ),
            (
                "DeliveryFailure",
                "DeliveryFailure_Other",
                S::DeliveryFailed,
                None,
            ),
            (
                "DeliveryFailure",
                "DeliveryFailure_NoBody",
                S::DeliveryFailed,
                Some(D::RecipientUnavailable),
            ),
            (
                "DeliveryFailure",
                "DeliveryFailure_Security",
                S::DeliveryFailed,
                None,
            ),
            (
                "DeliveryFailure",
                "DeliveryFailure_Rejected",
                S::DeliveryFailed,
                Some(D::Refused),
            ),
            (
                "DeliveryFailure",
                "DeliveryFailure_InvalidAddress",
                S::DeliveryFailed,
                Some(D::AddressIssue),
            ),
            ("Delivered", "Delivered_Other", S::Delivered, None),
            ("Exception", "Exception_Other", S::Exception, None),
            (
                "Exception",
                "Exception_Returning",
                S::Exception,
                Some(D::ReturningToSender),
            ),
            (
                "Exception",
                "Exception_Returned",
                S::Exception,
                Some(D::ReturnedToSender),
            ),
            (
                "Exception",
                "Exception_NoBody",
                S::Exception,
                Some(D::RecipientUnavailable),
            ),
            ("Exception", "Exception_Security", S::Exception, None),
            (
                "Exception",
                "Exception_Damage",
                S::Exception,
                Some(D::Damaged),
            ),
            (
                "Exception",
                "Exception_Rejected",
                S::Exception,
                Some(D::Refused),
            ),
            (
                "Exception",
                "Exception_Delayed",
                S::Exception,
                Some(D::Delayed),
            ),
            ("Exception", "Exception_Lost", S::Exception, Some(D::Lost)),
            ("Exception", "Exception_Destroyed", S::Exception, None),
            ("Exception", "Exception_Cancel", S::Exception, None),
        ];
        for (status, sub, expected_status, expected_detail) in cases {
            assert_eq!(
                latest(Some(status), Some(sub)),
                (*expected_status, *expected_detail),
                "{status} {sub}"
            );
        }
    }

    #[test]
    fn every_listed_value_maps_to_its_own_main_status() {
        // Every status and sub-status of the fixture list maps without falling back: a
        // sub-status keeps the main status it is named after.
        let list = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/statuses-and-substatuses.txt"
        ));
        let mut section = "";
        let mut seen = 0;
        for line in list.lines() {
            if line.starts_with("## ") {
                section = line;
                continue;
            }
            let Some(value) = line.split_whitespace().next() else {
                continue;
            };
            if line.starts_with('#') || section.contains("Milestone") {
                continue;
            }
            let main = value.split('_').next().unwrap();
            let expected = main_status(main).unwrap_or_else(|| panic!("{value}"));
            assert_eq!(latest(Some(main), Some(value)).0, expected, "{value}");
            assert_eq!(
                event(None, Some(value)).map(|m| m.0),
                Some(expected),
                "{value}"
            );
            seen += 1;
        }
        assert_eq!(seen, 9 + 27 + 3);
    }

    #[test]
    fn unknown_values_do_not_fail() {
        // A sub-status added later keeps its main status.
        assert_eq!(
            latest(Some("Exception"), Some("Exception_Confiscated")),
            (S::Exception, None)
        );
        assert_eq!(latest(Some("InTransit"), Some("")), (S::InTransit, None));
        // A main status added later: the sub-status's prefix when it is known, else in transit.
        assert_eq!(
            latest(Some("Held"), Some("Exception_Lost")),
            (S::Exception, Some(D::Lost))
        );
        assert_eq!(
            latest(Some("Held"), Some("Held_Other")),
            (S::InTransit, None)
        );
        assert_eq!(latest(None, None), (S::NotFound, None));
        assert_eq!(latest(Some(" "), None), (S::NotFound, None));
    }

    #[test]
    fn maps_event_stages() {
        let cases: &[(Option<&str>, Option<&str>, Option<Mapped>)] = &[
            (Some("InfoReceived"), None, Some((S::InfoReceived, None))),
            (Some("PickedUp"), None, Some((S::InTransit, None))),
            (Some("Departure"), None, Some((S::InTransit, None))),
            (Some("Arrival"), None, Some((S::InTransit, None))),
            (
                Some("AvailableForPickup"),
                None,
                Some((S::AvailableForPickup, None)),
            ),
            (
                Some("OutForDelivery"),
                None,
                Some((S::OutForDelivery, None)),
            ),
            (Some("Delivered"), None, Some((S::Delivered, None))),
            (
                Some("Returning"),
                None,
                Some((S::Exception, Some(D::ReturningToSender))),
            ),
            (
                Some("Returned"),
                None,
                Some((S::Exception, Some(D::ReturnedToSender))),
            ),
            (Some("InTransit_PickedUp"), None, Some((S::InTransit, None))),
            // The event's own sub-status wins over its stage.
            (
                Some("Arrival"),
                Some("InTransit_CustomsProcessing"),
                Some((S::InTransit, Some(D::CustomsProcessing))),
            ),
            (None, None, None),
            (Some(""), Some(""), None),
            (Some("Teleported"), None, None),
        ];
        for (stage, sub, expected) in cases {
            assert_eq!(event(*stage, *sub), *expected, "{stage:?} {sub:?}");
        }
    }
}
