//! `POST /api/v1/offers.csv` on any file: read row by row and each row checked as an offer. It
//! must refuse the file, or give every row (with its line number, in order) as an offer or its
//! problem; an amount taken is in bounds and reads back as the same number; never panic.
#![no_main]

use daifa_inputs::money;
use daifa_inputs::offer::{Connections, check, read_csv};
use libfuzzer_sys::fuzz_target;

fn connections() -> Connections {
    [
        ("shop", "channel", "con_shop"),
        ("acme", "supplier", "con_acme"),
    ]
    .into_iter()
    .map(|(name, kind, id)| (name.to_string(), (kind.to_string(), id.to_string())))
    .collect()
}

fuzz_target!(|file: &[u8]| {
    let Ok(rows) = read_csv(file) else {
        return;
    };
    let mut last_line = 1;
    for (line, row) in rows {
        assert!(
            line > last_line,
            "line numbers go up: {line} after {last_line}"
        );
        last_line = line;
        let Ok(input) = row else { continue };
        let Ok(offer) = check(input, &connections()) else {
            continue;
        };
        let currency = offer.input.currency.as_deref().unwrap_or_default().trim();
        for amount in [offer.unit_cost_minor, offer.shipping_cost_minor]
            .into_iter()
            .flatten()
        {
            assert!((0..=money::MAX_MINOR).contains(&amount), "{amount}");
            let text = money::format_major(amount, currency).expect("an ISO 4217 currency");
            assert_eq!(
                money::parse_major(&text, currency),
                Ok(amount),
                "{text} {currency}"
            );
        }
    }
});
