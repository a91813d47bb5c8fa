//! Shopify orders in canonical form.
//!
//! Shopify describes an order in two shapes: the REST order JSON of the `orders/*` webhooks, read
//! here, and the GraphQL `Order` object that polling reads ([`crate::poll`]). Each shape is reduced
//! to [`Parts`], and one builder ([`Parts::into_order`]) makes the canonical order of them: an
//! order polled and the same order received by webhook must be one order to the gateway.
//!
//! Only the fields Daifa uses are declared; serde skips the rest, so payloads of newer API
//! versions (which only add fields) keep parsing.

use std::fmt;

use daifa_plugin_sdk::PluginError;
use daifa_plugin_sdk::channel::OrderCancellation;
use daifa_plugin_sdk::types::{
    Address, Contact, Money, Order, OrderLine, PaymentStatus, TimestampMs,
};
use daifa_plugin_sdk::{json, money, time};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The `storefront` of every order this plugin produces.
pub const STOREFRONT: &str = "shopify";

/// Translates an order webhook body into the canonical order.
pub fn order_from_json(body: &[u8]) -> Result<Order, PluginError> {
    let order: ShopifyOrder = json::from_slice(body)?;
    order.into_parts()?.into_order()
}

/// Translates an `orders/cancelled` webhook body into a cancellation.
pub fn cancellation_from_json(body: &[u8]) -> Result<OrderCancellation, PluginError> {
    let order: ShopifyCancellation = json::from_slice(body)?;
    // `cancelled_at` is set on every cancelled order; `updated_at` is the moment of the change
    // that triggered the webhook, the best stand-in should a payload ever lack it.
    let (field, value) = match (non_blank(order.cancelled_at), non_blank(order.updated_at)) {
        (Some(at), _) => ("cancelled_at", at),
        (None, Some(at)) => ("updated_at", at),
        (None, None) => return Err(missing("cancelled_at")),
    };
    cancellation(order.id, order.cancel_reason, field, &value)
}

/// The cancellation of order `id`, as both shapes give it: `reason` in the REST spelling
/// (`customer`), `cancelled_at` read from `field`.
pub fn cancellation(
    id: Id,
    reason: Option<String>,
    field: &str,
    cancelled_at: &str,
) -> Result<OrderCancellation, PluginError> {
    Ok(OrderCancellation {
        external_id: id.to_string(),
        reason: non_blank(reason),
        cancelled_at: timestamp(field, cancelled_at)?,
    })
}

/// A Shopify id. REST payloads send ids as JSON numbers that do not fit an `f64` exactly
/// (820982911946154508), so they are read as `u64` and never through a float; a decimal string
/// is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub u64);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a shopify id (a non-negative integer)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
                Ok(Id(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
                u64::try_from(v)
                    .map(Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
                v.parse()
                    .map(Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// The shape an order was read from: errors name fields the way that shape spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The REST order JSON of webhooks (`shipping_address.country_code`).
    Rest,
    /// The GraphQL Admin API's `Order` (`shippingAddress.countryCodeV2`).
    Graphql,
}

impl Shape {
    fn field(self, rest: &'static str, graphql: &'static str) -> &'static str {
        match self {
            Self::Rest => rest,
            Self::Graphql => graphql,
        }
    }
}

/// An amount as Shopify wrote it: a decimal string ("199.00", "199.0"), with the currency it
/// names when it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    /// Where it was read (`total_price_set.shop_money`), for errors.
    pub field: String,
    pub amount: String,
    pub currency_code: Option<String>,
}

/// What the canonical order is built from, whichever shape it was read from. Text is as Shopify
/// sent it: the builder decides what is blank, required or malformed, the same way for both.
#[derive(Debug, Clone)]
pub struct Parts {
    pub shape: Shape,
    pub id: Id,
    pub name: Option<String>,
    /// The shop's currency.
    pub currency: String,
    pub created_at: String,
    pub note: Option<String>,
    pub customer_first_name: Option<String>,
    pub customer_last_name: Option<String>,
    /// Email addresses by preference: the first that is not blank is the contact's.
    pub emails: Vec<Option<String>>,
    /// Phone numbers by preference, likewise.
    pub phones: Vec<Option<String>>,
    pub subtotal: Amount,
    pub tax: Amount,
    pub total: Amount,
    /// What adds up to the shipping charged: its total, or the price of each shipping line;
    /// nothing is zero.
    pub shipping: Vec<Amount>,
    pub shipping_address: Option<AddressParts>,
    pub lines: Vec<LineParts>,
    /// The order's financial status as the shape spells it (REST `paid`, GraphQL `PAID`).
    pub financial_status: Option<String>,
    /// The names of the payment gateways the order was paid (or is to be paid) through.
    pub payment_gateway_names: Vec<String>,
    /// When Shopify last changed the order.
    pub updated_at: Option<String>,
}

/// A shipping address. The REST shape deserializes into it as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AddressParts {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub province_code: Option<String>,
    pub zip: Option<String>,
    pub country_code: Option<String>,
    pub phone: Option<String>,
}

/// One line item.
#[derive(Debug, Clone)]
pub struct LineParts {
    pub id: Id,
    pub sku: Option<String>,
    pub variant_id: Option<Id>,
    pub title: String,
    pub variant_title: Option<String>,
    pub quantity: u32,
    pub unit_price: Amount,
    /// Line item properties (GraphQL: custom attributes) as name and value, in their order:
    /// buyer input (engraving text, an uploaded file's URL...), kept verbatim.
    pub properties: Vec<(String, String)>,
}

impl Parts {
    /// The canonical order.
    pub fn into_order(self) -> Result<Order, PluginError> {
        let shape = self.shape;
        let currency = self.currency.trim().to_ascii_uppercase();
        // An unknown currency would fail every amount; say so once, naming the field.
        money::exponent(&currency)
            .map_err(|e| in_field(shape.field("currency", "currencyCode"), e))?;
        let cur = currency.as_str();

        let subtotal = amount(&self.subtotal, cur)?;
        let tax = amount(&self.tax, cur)?;
        let total = amount(&self.total, cur)?;
        let mut shipping = money::zero(cur);
        for part in &self.shipping {
            shipping.amount_minor = shipping
                .amount_minor
                .checked_add(amount(part, cur)?.amount_minor)
                .ok_or_else(|| {
                    PluginError::bad_payload(format!(
                        "`{}` add up to more than can be counted",
                        shape.field("shipping_lines", "totalShippingPriceSet")
                    ))
                })?;
        }

        let shipping_address = self
            .shipping_address
            .map(|a| a.into_address(shape))
            .transpose()?;
        let contact = Contact {
            name: full_name(
                self.customer_first_name.as_deref(),
                self.customer_last_name.as_deref(),
            )
            .or_else(|| shipping_address.as_ref().and_then(|a| a.name.clone())),
            email: self.emails.into_iter().find_map(non_blank),
            phone: self.phones.into_iter().find_map(non_blank),
        };

        let lines = self
            .lines
            .into_iter()
            .map(|line| line.into_line(cur))
            .collect::<Result<Vec<_>, _>>()?;
        let updated_at = non_blank(self.updated_at)
            .map(|at| timestamp(shape.field("updated_at", "updatedAt"), at.trim()))
            .transpose()?;

        Ok(Order {
            external_id: self.id.to_string(),
            order_number: non_blank(self.name),
            storefront: STOREFRONT.to_string(),
            currency: currency.clone(),
            subtotal,
            shipping,
            tax,
            total,
            placed_at: timestamp(shape.field("created_at", "createdAt"), &self.created_at)?,
            // Verbatim: colour, size and packing requests must reach the shipper as typed.
            buyer_note: self.note.filter(|n| !n.trim().is_empty()),
            customer: contact,
            shipping_address,
            lines,
            payment: payment_status(
                self.financial_status.as_deref(),
                &self.payment_gateway_names,
            ),
            updated_at,
        })
    }
}

/// The gateway name of Shopify's own cash-on-delivery payment method, one of the manual payment
/// methods a shop can activate (Settings > Payments). Shopify reserves the name: a custom manual
/// method cannot take it, so it names this method and no other. Compared without regard to case.
pub const CASH_ON_DELIVERY_GATEWAY: &str = "Cash on Delivery (COD)";

/// The canonical payment status of Shopify's financial status (REST `financial_status`, GraphQL
/// `displayFinancialStatus`: the same values, upper-cased in GraphQL) and the order's payment
/// gateways. No status, none: Shopify does not say.
pub fn payment_status(
    financial_status: Option<&str>,
    gateways: &[String],
) -> Option<PaymentStatus> {
    let status = financial_status
        .map(str::trim)
        .filter(|s| !s.is_empty())?
        .to_ascii_lowercase();
    Some(match status.as_str() {
        // Orders paid with a manual method (cash on delivery among them) stay `pending` until
        // the merchant marks them paid; a cash-on-delivery order is paid when it is delivered.
        "pending" if gateways.iter().any(|g| is_cash_on_delivery(g)) => {
            PaymentStatus::CashOnDelivery
        }
        "pending" => PaymentStatus::Pending,
        "authorized" => PaymentStatus::Authorized,
        "partially_paid" => PaymentStatus::PartiallyPaid,
        "paid" => PaymentStatus::Paid,
        "partially_refunded" => PaymentStatus::PartiallyRefunded,
        "refunded" => PaymentStatus::Refunded,
        // `expired`: the authorization was not captured in time, or (some providers) the
        // payment failed. Nothing will come, as for a voided one.
        "voided" | "expired" => PaymentStatus::Voided,
        // A status this plugin does not know (a newer API version's). Reading it as none would
        // tell the gateway the order is paid, and it would ship; refusing the payload would keep
        // every copy of the order from the gateway (Shopify retrying the webhook until it gives
        // up, polling skipping it), so that not even a person could see it. As pending the order
        // is held, visibly, until a copy with a status known as paid releases it.
        _ => PaymentStatus::Pending,
    })
}

/// Whether `gateway` is Shopify's cash-on-delivery method ([`CASH_ON_DELIVERY_GATEWAY`]).
/// Other names (a cash-on-delivery app's own, a custom manual method) are not guessed at: such an
/// order stays `pending`, held until marked paid, which is the safe side.
fn is_cash_on_delivery(gateway: &str) -> bool {
    gateway
        .trim()
        .eq_ignore_ascii_case(CASH_ON_DELIVERY_GATEWAY)
}

impl AddressParts {
    fn into_address(self, shape: Shape) -> Result<Address, PluginError> {
        let line1 = non_blank(self.address1).ok_or_else(|| {
            missing(shape.field("shipping_address.address1", "shippingAddress.address1"))
        })?;
        let country_code = non_blank(self.country_code)
            .ok_or_else(|| {
                missing(shape.field(
                    "shipping_address.country_code",
                    "shippingAddress.countryCodeV2",
                ))
            })?
            .trim()
            .to_ascii_uppercase();
        Ok(Address {
            name: non_blank(self.name)
                .or_else(|| full_name(self.first_name.as_deref(), self.last_name.as_deref())),
            company: non_blank(self.company),
            line1,
            line2: non_blank(self.address2),
            // Some countries' checkouts (Singapore, for one) have no city field.
            city: non_blank(self.city).unwrap_or_default(),
            province: non_blank(self.province),
            province_code: non_blank(self.province_code),
            postal_code: non_blank(self.zip),
            country_code,
            phone: non_blank(self.phone),
        })
    }
}

impl LineParts {
    fn into_line(self, currency: &str) -> Result<OrderLine, PluginError> {
        let unit_price = amount(&self.unit_price, currency)?;
        // Routing needs some stable key even for products the merchant left without a SKU.
        let storefront_sku = match (non_blank(self.sku), self.variant_id) {
            (Some(sku), _) => sku,
            (None, Some(variant)) => format!("shopify-variant:{variant}"),
            (None, None) => format!("shopify-line:{}", self.id),
        };
        let pairs: Vec<String> = self
            .properties
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        Ok(OrderLine {
            external_line_id: self.id.to_string(),
            storefront_sku,
            title: self.title,
            variant_title: non_blank(self.variant_title),
            quantity: self.quantity,
            unit_price,
            note: (!pairs.is_empty()).then(|| pairs.join("; ")),
        })
    }
}

/// An amount in the order's currency, in minor units by the currency's exponent. An amount that
/// names another currency is refused: Daifa's totals are in the shop's currency.
fn amount(amount: &Amount, currency: &str) -> Result<Money, PluginError> {
    if let Some(code) = &amount.currency_code
        && !code.trim().eq_ignore_ascii_case(currency)
    {
        return Err(PluginError::bad_payload(format!(
            "`{}` is in {code}, the order in {currency}",
            amount.field
        )));
    }
    money::parse(&amount.amount, currency).map_err(|e| in_field(&amount.field, e))
}

#[derive(Debug, Deserialize)]
struct ShopifyOrder {
    id: Id,
    name: Option<String>,
    currency: String,
    created_at: String,
    note: Option<String>,
    email: Option<String>,
    contact_email: Option<String>,
    phone: Option<String>,
    customer: Option<Customer>,
    subtotal_price: Option<String>,
    subtotal_price_set: Option<MoneyBag>,
    total_shipping_price_set: Option<MoneyBag>,
    shipping_lines: Option<Vec<ShippingLine>>,
    total_tax: Option<String>,
    total_tax_set: Option<MoneyBag>,
    total_price: Option<String>,
    total_price_set: Option<MoneyBag>,
    shipping_address: Option<AddressParts>,
    line_items: Vec<LineItem>,
    financial_status: Option<String>,
    /// A list of names; a `null` among them is read as no name.
    payment_gateway_names: Option<Vec<Option<String>>>,
    updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ShopifyCancellation {
    id: Id,
    cancel_reason: Option<String>,
    cancelled_at: Option<String>,
    updated_at: Option<String>,
}

/// Shopify's `*_set` amounts: the same amount in the shop's and in the buyer's currency.
#[derive(Debug, Deserialize)]
struct MoneyBag {
    shop_money: Option<ShopMoney>,
}

#[derive(Debug, Deserialize)]
struct ShopMoney {
    amount: String,
    currency_code: String,
}

#[derive(Debug, Deserialize)]
struct Customer {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ShippingLine {
    price: Option<String>,
    price_set: Option<MoneyBag>,
}

#[derive(Debug, Deserialize)]
struct LineItem {
    id: Id,
    sku: Option<String>,
    variant_id: Option<Id>,
    title: String,
    variant_title: Option<String>,
    quantity: u32,
    price: Option<String>,
    price_set: Option<MoneyBag>,
    properties: Option<Vec<Property>>,
}

#[derive(Debug, Deserialize)]
struct Property {
    name: String,
    value: serde_json::Value,
}

impl ShopifyOrder {
    fn into_parts(self) -> Result<Parts, PluginError> {
        let required = |field: &str, set: Option<MoneyBag>, plain: Option<String>| {
            rest_amount(field, set, plain).ok_or_else(|| missing(field))
        };
        let subtotal = required(
            "subtotal_price",
            self.subtotal_price_set,
            self.subtotal_price,
        )?;
        let tax = required("total_tax", self.total_tax_set, self.total_tax)?;
        let total = required("total_price", self.total_price_set, self.total_price)?;
        // Older payloads have no `total_shipping_price_set`: the shipping lines add up to it.
        let shipping =
            match rest_amount("total_shipping_price", self.total_shipping_price_set, None) {
                Some(total) => vec![total],
                None => self
                    .shipping_lines
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|l| rest_amount("shipping_lines.price", l.price_set, l.price))
                    .collect(),
            };
        let lines = self
            .line_items
            .into_iter()
            .map(LineItem::into_parts)
            .collect::<Result<Vec<_>, _>>()?;
        let customer = self.customer;
        let (first_name, last_name, customer_email, customer_phone) = match customer {
            Some(c) => (c.first_name, c.last_name, c.email, c.phone),
            None => (None, None, None, None),
        };
        Ok(Parts {
            shape: Shape::Rest,
            id: self.id,
            name: self.name,
            currency: self.currency,
            created_at: self.created_at,
            note: self.note,
            customer_first_name: first_name,
            customer_last_name: last_name,
            emails: vec![self.email, self.contact_email, customer_email],
            phones: vec![self.phone, customer_phone],
            subtotal,
            tax,
            total,
            shipping,
            shipping_address: self.shipping_address,
            lines,
            financial_status: self.financial_status,
            payment_gateway_names: self
                .payment_gateway_names
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect(),
            updated_at: self.updated_at,
        })
    }
}

impl LineItem {
    fn into_parts(self) -> Result<LineParts, PluginError> {
        let unit_price = rest_amount("line_items.price", self.price_set, self.price)
            .ok_or_else(|| missing("line_items.price"))?;
        let properties = self
            .properties
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let value = match p.value {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                (p.name, value)
            })
            .collect();
        Ok(LineParts {
            id: self.id,
            sku: self.sku,
            variant_id: self.variant_id,
            title: self.title,
            variant_title: self.variant_title,
            quantity: self.quantity,
            unit_price,
            properties,
        })
    }
}

/// An amount of the REST shape: `*_set.shop_money` when the payload has it, else the plain
/// decimal string (which Shopify also gives in the shop's currency). `None` when neither is there.
fn rest_amount(field: &str, set: Option<MoneyBag>, plain: Option<String>) -> Option<Amount> {
    match set.and_then(|s| s.shop_money) {
        Some(shop) => Some(Amount {
            field: format!("{field}_set.shop_money"),
            amount: shop.amount,
            currency_code: Some(shop.currency_code),
        }),
        None => plain.map(|amount| Amount {
            field: field.to_string(),
            amount,
            currency_code: None,
        }),
    }
}

fn timestamp(field: &str, value: &str) -> Result<TimestampMs, PluginError> {
    time::parse_rfc3339(value).map_err(|e| in_field(field, e))
}

fn full_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Shopify sends absent text as `null` or `""` alike; both mean nothing.
fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// The error of a required field that is absent.
pub fn missing(field: &str) -> PluginError {
    PluginError::bad_payload(format!("missing field `{field}`"))
}

/// Prefixes an error's message with the field it is about, keeping its kind.
pub fn in_field(field: &str, error: PluginError) -> PluginError {
    let message = format!("`{field}`: {}", error.message());
    match error {
        PluginError::BadSignature(_) => PluginError::BadSignature(message),
        PluginError::BadPayload(_) => PluginError::BadPayload(message),
        PluginError::Unsupported(_) => PluginError::Unsupported(message),
        PluginError::Transient(_) => PluginError::Transient(message),
        PluginError::Permanent(_) => PluginError::Permanent(message),
    }
}

/// Shopify's financial statuses (REST spelling), the gateways, and the payment Daifa reads: the
/// table both shapes are tested against.
#[cfg(test)]
pub(crate) const PAYMENTS: [(&str, &[&str], PaymentStatus); 16] = [
    ("pending", &["bogus"], PaymentStatus::Pending),
    (
        "authorized",
        &["shopify_payments"],
        PaymentStatus::Authorized,
    ),
    ("partially_paid", &["manual"], PaymentStatus::PartiallyPaid),
    ("paid", &["visa", "bogus"], PaymentStatus::Paid),
    (
        "partially_refunded",
        &["bogus"],
        PaymentStatus::PartiallyRefunded,
    ),
    ("refunded", &["bogus"], PaymentStatus::Refunded),
    ("voided", &["visa", "bogus"], PaymentStatus::Voided),
    ("expired", &["bogus"], PaymentStatus::Voided),
    // Cash on delivery: pending until the carrier collects and the merchant marks it paid.
    (
        "pending",
        &["Cash on Delivery (COD)"],
        PaymentStatus::CashOnDelivery,
    ),
    (
        "pending",
        &["cash on delivery (cod)"],
        PaymentStatus::CashOnDelivery,
    ),
    (
        "pending",
        &["gift_card", "Cash on Delivery (COD)"],
        PaymentStatus::CashOnDelivery,
    ),
    ("paid", &["Cash on Delivery (COD)"], PaymentStatus::Paid),
    ("voided", &["Cash on Delivery (COD)"], PaymentStatus::Voided),
    // A name that is not Shopify's own method is not guessed at: held as unpaid.
    (
        "pending",
        &["Advanced Cash on Delivery"],
        PaymentStatus::Pending,
    ),
    ("pending", &[], PaymentStatus::Pending),
    // A status this plugin does not know is held as unpaid, never read as paid.
    ("on_hold", &["bogus"], PaymentStatus::Pending),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ORDERS_CREATE: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/shopify/webhook-orders-create.sample.json"
    ));
    const ORDERS_CANCELLED: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/shopify/webhook-orders-cancelled.sample.json"
    ));

    fn usd(amount_minor: i64) -> Money {
        Money {
            amount_minor,
            currency: "USD".into(),
        }
    }

    #[test]
    fn published_sample_order_maps_to_the_canonical_order() {
        let line = |id: &str| OrderLine {
            external_line_id: id.into(),
            storefront_sku: "IPOD2008PINK".into(),
            title: "IPod Nano - 8GB".into(),
            variant_title: None,
            quantity: 1,
            unit_price: usd(19_900),
            note: None,
        };
        let expected = Order {
            external_id: "820982911946154508".into(),
            order_number: Some("#9999".into()),
            storefront: "shopify".into(),
            currency: "USD".into(),
            subtotal: usd(38_800),
            shipping: usd(1_000),
            tax: usd(0),
            total: usd(38_800),
            // 2021-12-31T19:00:00-05:00
            placed_at: 1_640_995_200_000,
            buyer_note: None,
            customer: Contact {
                name: Some("John Smith".into()),
                email: Some("jon@example.com".into()),
                phone: None,
            },
            shipping_address: Some(Address {
                name: Some("Steve Shipper".into()),
                company: Some("Shipping Company".into()),
                line1: "123 Shipping Street".into(),
                line2: None,
                city: "Shippington".into(),
                province: Some("Kentucky".into()),
                province_code: Some("KY".into()),
                postal_code: Some("40003".into()),
                country_code: "US".into(),
                phone: Some("555-555-SHIP".into()),
            }),
            lines: vec![line("866550311766439020"), line("141249953214522974")],
            // The sample's `financial_status: voided`, paid through `visa` and `bogus`.
            payment: Some(PaymentStatus::Voided),
            // 2021-12-31T19:00:00-05:00
            updated_at: Some(1_640_995_200_000),
        };
        assert_eq!(order_from_json(ORDERS_CREATE).unwrap(), expected);
    }

    #[test]
    fn published_cancelled_sample_maps_to_a_cancellation() {
        let cancellation = cancellation_from_json(ORDERS_CANCELLED).unwrap();
        assert_eq!(
            cancellation,
            OrderCancellation {
                external_id: "820982911946154508".into(),
                reason: Some("customer".into()),
                cancelled_at: 1_640_995_200_000,
            }
        );
    }

    /// The published sample with its payment as given: `financial_status` (absent when none)
    /// and `payment_gateway_names`.
    fn sample_paid_as(status: Option<&str>, gateways: &[&str]) -> Order {
        let mut body: serde_json::Value = serde_json::from_slice(ORDERS_CREATE).unwrap();
        match status {
            Some(status) => body["financial_status"] = json!(status),
            None => drop(body.as_object_mut().unwrap().remove("financial_status")),
        }
        body["payment_gateway_names"] = json!(gateways);
        map(&body).unwrap()
    }

    #[test]
    fn financial_status_and_gateways_give_the_payment() {
        for (status, gateways, payment) in PAYMENTS {
            assert_eq!(
                sample_paid_as(Some(status), gateways).payment,
                Some(payment),
                "{status} {gateways:?}"
            );
        }
    }

    #[test]
    fn no_financial_status_is_no_payment_status() {
        assert_eq!(sample_paid_as(None, &["bogus"]).payment, None);
        let mut body = minimal();
        assert_eq!(map(&body).unwrap().payment, None);
        // Cash on delivery says how the buyer pays, not whether they have.
        body["payment_gateway_names"] = json!(["Cash on Delivery (COD)"]);
        assert_eq!(map(&body).unwrap().payment, None);
        for blank in [json!(null), json!(""), json!("  ")] {
            body["financial_status"] = blank;
            assert_eq!(map(&body).unwrap().payment, None);
        }
        // A `null` among the names is no name.
        body["financial_status"] = json!("pending");
        body["payment_gateway_names"] = json!([null, "Cash on Delivery (COD)"]);
        assert_eq!(
            map(&body).unwrap().payment,
            Some(PaymentStatus::CashOnDelivery)
        );
        body["payment_gateway_names"] = json!(null);
        assert_eq!(map(&body).unwrap().payment, Some(PaymentStatus::Pending));
    }

    #[test]
    fn updated_at_is_the_time_of_the_change() {
        let mut body = minimal();
        assert_eq!(map(&body).unwrap().updated_at, None);
        body["updated_at"] = json!("2025-01-02T04:05:06.789+01:00");
        assert_eq!(map(&body).unwrap().updated_at, Some(1_735_787_106_789));
        body["updated_at"] = json!("");
        assert_eq!(map(&body).unwrap().updated_at, None);
        body["updated_at"] = json!("last tuesday");
        let err = map(&body).unwrap_err();
        assert_eq!(err.kind(), "bad-payload");
        assert!(
            err.message().starts_with("`updated_at`: "),
            "{}",
            err.message()
        );
    }

    const ORDERS_PAID: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhook-orders-paid.derived.json"
    ));
    const ORDERS_CREATE_COD: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhook-orders-create-cod.derived.json"
    ));

    #[test]
    fn derived_samples_differ_from_the_published_one_in_payment_and_time_only() {
        let published = order_from_json(ORDERS_CREATE).unwrap();
        let paid = order_from_json(ORDERS_PAID).unwrap();
        assert_eq!(paid.payment, Some(PaymentStatus::Paid));
        // 2022-01-01T10:30:00-05:00: a later copy of the order.
        assert_eq!(paid.updated_at, Some(1_641_051_000_000));
        assert!(paid.updated_at > published.updated_at);
        let cod = order_from_json(ORDERS_CREATE_COD).unwrap();
        assert_eq!(cod.payment, Some(PaymentStatus::CashOnDelivery));
        assert_eq!(cod.updated_at, published.updated_at);
        for order in [paid, cod] {
            let same = Order {
                payment: published.payment,
                updated_at: published.updated_at,
                ..order
            };
            assert_eq!(same, published);
        }
    }

    /// The smallest order body the mapping accepts, to vary one field at a time.
    fn minimal() -> serde_json::Value {
        json!({
            "id": 1001,
            "currency": "USD",
            "created_at": "2025-01-02T03:04:05Z",
            "subtotal_price": "10.00",
            "total_tax": "0.00",
            "total_price": "10.00",
            "line_items": [{ "id": 7, "sku": "A-1", "title": "Mug", "quantity": 2, "price": "5.00" }]
        })
    }

    fn map(value: &serde_json::Value) -> Result<Order, PluginError> {
        order_from_json(&serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn minimal_order_has_no_address_and_zero_shipping() {
        let order = map(&minimal()).unwrap();
        assert_eq!(order.shipping_address, None);
        assert_eq!(order.shipping, usd(0));
        assert_eq!(order.order_number, None);
        assert_eq!(
            order.customer,
            Contact {
                name: None,
                email: None,
                phone: None
            }
        );
        assert_eq!(order.lines[0].quantity, 2);
        assert_eq!(order.lines[0].unit_price, usd(500));
    }

    #[test]
    fn ids_keep_every_digit_of_a_u64() {
        let mut body = minimal();
        body["id"] = json!(u64::MAX);
        assert_eq!(map(&body).unwrap().external_id, u64::MAX.to_string());
        body["id"] = json!("9007199254740993");
        assert_eq!(map(&body).unwrap().external_id, "9007199254740993");
        body["id"] = json!(1.5);
        assert_eq!(map(&body).unwrap_err().kind(), "bad-payload");
    }

    #[test]
    fn sku_falls_back_to_the_variant_then_the_line() {
        let mut body = minimal();
        body["line_items"] = json!([
            { "id": 1, "sku": "", "variant_id": 808950810, "title": "A", "quantity": 1, "price": "1.00" },
            { "id": 2, "sku": null, "variant_id": null, "title": "B", "quantity": 1, "price": "1.00" },
            { "id": 3, "title": "C", "quantity": 1, "price": "1.00" }
        ]);
        let skus: Vec<String> = map(&body)
            .unwrap()
            .lines
            .into_iter()
            .map(|l| l.storefront_sku)
            .collect();
        assert_eq!(
            skus,
            [
                "shopify-variant:808950810",
                "shopify-line:2",
                "shopify-line:3"
            ]
        );
    }

    #[test]
    fn properties_become_the_line_note() {
        let mut body = minimal();
        body["line_items"][0]["properties"] = json!([
            { "name": "Engraving", "value": "Für Anna  ♥" },
            { "name": "Size", "value": 42 },
            { "name": "_upload", "value": null }
        ]);
        let note = map(&body).unwrap().lines[0].note.clone();
        assert_eq!(
            note.as_deref(),
            Some("Engraving: Für Anna  ♥; Size: 42; _upload: ")
        );
    }

    #[test]
    fn buyer_note_is_verbatim_and_blank_is_none() {
        let mut body = minimal();
        body["note"] = json!("  red, size M\nno invoice in the box ");
        assert_eq!(
            map(&body).unwrap().buyer_note.as_deref(),
            Some("  red, size M\nno invoice in the box ")
        );
        body["note"] = json!(" \n ");
        assert_eq!(map(&body).unwrap().buyer_note, None);
    }

    #[test]
    fn contact_falls_back_to_contact_email_customer_and_address() {
        let mut body = minimal();
        body["contact_email"] = json!("buyer@example.com");
        body["customer"] = json!({ "first_name": null, "last_name": null, "phone": "+15550100" });
        body["shipping_address"] = json!({
            "first_name": "Ana", "last_name": "Silva", "address1": "Rua 1", "city": "Lisboa",
            "zip": "1000-001", "country_code": "pt"
        });
        let order = map(&body).unwrap();
        assert_eq!(
            order.customer,
            Contact {
                name: Some("Ana Silva".into()),
                email: Some("buyer@example.com".into()),
                phone: Some("+15550100".into())
            }
        );
        let address = order.shipping_address.unwrap();
        assert_eq!(address.name.as_deref(), Some("Ana Silva"));
        assert_eq!(address.country_code, "PT");
    }

    #[test]
    fn amounts_prefer_shop_money_and_follow_the_currency_exponent() {
        let mut body = minimal();
        body["currency"] = json!("JPY");
        body["subtotal_price"] = json!("1200");
        body["total_tax"] = json!("0");
        body["total_price"] = json!("1700");
        body["total_price_set"] = json!({
            "shop_money": { "amount": "1700", "currency_code": "JPY" },
            "presentment_money": { "amount": "11.50", "currency_code": "USD" }
        });
        body["shipping_lines"] = json!([{ "price": "300" }, { "price": "200" }]);
        body["line_items"][0]["price"] = json!("600");
        let order = map(&body).unwrap();
        let jpy = |amount_minor| Money {
            amount_minor,
            currency: "JPY".into(),
        };
        assert_eq!(
            (order.subtotal, order.shipping, order.total),
            (jpy(1200), jpy(500), jpy(1700))
        );
        assert_eq!(order.lines[0].unit_price, jpy(600));
    }

    #[test]
    fn errors_name_the_field() {
        // (field named in the error, JSON pointer of the parent, key, new value or removal)
        let cases = [
            ("currency", "", "currency", None),
            ("total_price", "", "total_price", None),
            ("total_price", "", "total_price", Some(json!("ten"))),
            ("created_at", "", "created_at", Some(json!("yesterday"))),
            ("title", "/line_items/0", "title", None),
            (
                "shipping_address.address1",
                "",
                "shipping_address",
                Some(json!({ "country_code": "US" })),
            ),
        ];
        for (field, parent, key, value) in cases {
            let mut body = minimal();
            let parent = body.pointer_mut(parent).unwrap().as_object_mut().unwrap();
            match value {
                Some(value) => drop(parent.insert(key.to_string(), value)),
                None => drop(parent.remove(key)),
            }
            let err = map(&body).unwrap_err();
            assert_eq!(err.kind(), "bad-payload", "{field}");
            assert!(err.message().contains(field), "{field}: {}", err.message());
        }
    }
}
