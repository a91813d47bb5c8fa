//! Polling: the orders that changed on Shopify, read with the GraphQL Admin API, as the events
//! their webhooks would have given. A safety net for missed webhooks: Shopify does not guarantee
//! delivery, and an order polled is recognised by the gateway as the order a webhook brought (same
//! external id, same canonical order: both shapes go through [`Parts::into_order`]).
//!
//! One poll reads one page of `orders(sortKey: UPDATED_AT, query: "updated_at:>='…'")`. A run of
//! pages follows Shopify's cursors; when it ends, the next run starts from the latest `updatedAt`
//! seen. The cursor carries both ([`Cursor`]).

use std::collections::BTreeMap;

use daifa_plugin_sdk::channel::{ChannelEvent, PollResult};
use daifa_plugin_sdk::types::{PollRequest, TimestampMs};
use daifa_plugin_sdk::{PluginError, json, time};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::graphql::{self, Call, Page, PageInfo};
use crate::order::{self, AddressParts, Amount, LineParts, Parts, Shape};

/// The selection of an amount: in the shop's currency, the one the REST shape's plain amounts
/// and `shop_money` are in.
macro_rules! money_fragment {
    () => {
        "
fragment DaifaMoney on MoneyBag {
  shopMoney {
    amount
    currencyCode
  }
}"
    };
}

/// The selection of a line item: what an order line is built from, as from the REST
/// `line_items` (`price` is the unit price before discounts: `originalUnitPriceSet`; the
/// properties are `customAttributes`; the variant only for its id, the SKU's fallback).
macro_rules! line_item_fragment {
    () => {
        "
fragment DaifaLineItem on LineItem {
  id
  sku
  title
  variantTitle
  quantity
  originalUnitPriceSet {
    ...DaifaMoney
  }
  customAttributes {
    key
    value
  }
  variant {
    id
  }
}"
    };
}

/// A page of the orders updated at or after `$search`'s time, oldest change first, each with its
/// own cursor: a poll that runs out of calls stops after the last order it read.
///
/// Page sizes keep the query under Shopify's limit of 1000 cost points per query (an object
/// costs 1, a connection 2 plus `first` times its node, a scalar or an enum nothing, so the
/// payment status and gateways add nothing): a line item costs about 5, an order
/// about 13 plus 2 + 10 × 5 for its lines, so a page costs about 2 + 10 × 65 = 652. Orders with
/// more lines have the rest read by [`ORDER_LINES_QUERY`].
pub const ORDERS_QUERY: &str = concat!(
    "query DaifaPollOrders($search: String!, $after: String) {
  orders(first: 10, after: $after, sortKey: UPDATED_AT, query: $search) {
    pageInfo {
      hasNextPage
      endCursor
    }
    edges {
      cursor
      node {
        id
        name
        currencyCode
        createdAt
        updatedAt
        cancelledAt
        cancelReason
        note
        email
        phone
        displayFinancialStatus
        paymentGatewayNames
        customer {
          firstName
          lastName
          defaultEmailAddress {
            emailAddress
          }
          defaultPhoneNumber {
            phoneNumber
          }
        }
        subtotalPriceSet {
          ...DaifaMoney
        }
        totalShippingPriceSet {
          ...DaifaMoney
        }
        totalTaxSet {
          ...DaifaMoney
        }
        totalPriceSet {
          ...DaifaMoney
        }
        shippingAddress {
          name
          firstName
          lastName
          company
          address1
          address2
          city
          province
          provinceCode
          zip
          countryCodeV2
          phone
        }
        lineItems(first: 10) {
          pageInfo {
            hasNextPage
            endCursor
          }
          nodes {
            ...DaifaLineItem
          }
        }
      }
    }
  }
}",
    line_item_fragment!(),
    money_fragment!()
);

/// The line items of one order after the first page (about 1 + 2 + 100 × 5 = 503 points).
pub const ORDER_LINES_QUERY: &str = concat!(
    "query DaifaPollOrderLines($id: ID!, $after: String!) {
  order(id: $id) {
    lineItems(first: 100, after: $after) {
      pageInfo {
        hasNextPage
        endCursor
      }
      nodes {
        ...DaifaLineItem
      }
    }
  }
}",
    line_item_fragment!(),
    money_fragment!()
);

/// The GraphQL calls one poll makes at most: the manifest's `limits.max_outbound_requests`. The
/// host refuses a call beyond its limit, and a poll that always failed on the same page would
/// stall polling for good; the orders query takes one, the rest read line items.
pub const CALLS_PER_POLL: usize = 8;

/// How far behind the poll's own time the next run starts at the latest: Shopify does not say
/// how soon a change shows in the orders search, so the last minute is read again (orders already
/// sent are skipped, see [`Cursor::sent`]).
pub const SETTLE_MS: TimestampMs = 60_000;

/// How many sent orders the cursor remembers. Beyond, the oldest are forgotten: they may be sent
/// again, which the gateway recognises.
pub const MAX_SENT: usize = 250;

/// Polls one page. Orders that cannot be read (skipped, or polling would stall on them) and a
/// cursor that cannot be read are listed in the result's `skipped`. `now` is the host's clock; `send` performs one GraphQL call and returns the
/// body of a 2xx answer (the component sends through the host, tests answer from memory).
pub fn poll(
    request: &PollRequest,
    now: TimestampMs,
    mut send: impl FnMut(&Call) -> Result<Vec<u8>, PluginError>,
) -> Result<PollResult, PluginError> {
    let mut warnings = Vec::new();
    let mut cursor = match request.cursor.as_deref() {
        None => Cursor::start(request.since),
        // A cursor is only ever one this plugin wrote; should one be unreadable all the same,
        // stalling would stop the safety net for good, while starting over from `since` only
        // re-reads what the first poll read.
        Some(text) => Cursor::decode(text).unwrap_or_else(|e| {
            warnings.push(format!("{}; polling starts over from `since`", e.message()));
            Cursor::start(request.since)
        }),
    };
    let data: OrdersData = graphql::data("the orders query", &send(&cursor.orders_call()?)?)?;
    let page = data.orders;
    let mut events = Vec::new();
    let mut calls_left = CALLS_PER_POLL - 1;
    // The cursor of the last order read: where the next poll continues should this one stop.
    let mut read_up_to: Option<String> = None;
    let mut stopped = false;
    for Edge { cursor: edge, node } in page.edges {
        let (id, updated_at) = match node.key() {
            Ok(key) => key,
            Err(e) => {
                warnings.push(format!("order `{}` skipped: {}", node.id, e.message()));
                read_up_to = Some(edge);
                continue;
            }
        };
        // Unchanged since it was sent (the last run's boundary, the settle margin): not again.
        if cursor.sent.get(&id) != Some(&updated_at) {
            let had_every_call = calls_left == CALLS_PER_POLL - 1;
            match node.into_event(&mut send, &mut calls_left) {
                Ok(event) => events.push(event),
                // Read from here by the next poll, which has every call for it.
                Err(Failure::OutOfCalls) if !had_every_call => {
                    stopped = true;
                    break;
                }
                Err(Failure::OutOfCalls) => warnings.push(format!(
                    "order `{id}` skipped: it has more line items than one poll reads"
                )),
                // One order Daifa cannot read must not hold back the orders after it: the
                // webhook of the same order would have been refused the same way.
                Err(Failure::Plugin(PluginError::BadPayload(message))) => {
                    warnings.push(format!("order `{id}` skipped: {message}"));
                }
                Err(Failure::Plugin(e)) => return Err(e),
            }
        }
        cursor.position = Some(updated_at);
        cursor.sent.insert(id, updated_at);
        read_up_to = Some(edge);
    }
    let more = if stopped {
        cursor.stop_after(read_up_to, now);
        true
    } else {
        cursor.turn_page(page.page_info, now)?
    };
    Ok(PollResult {
        events,
        next_cursor: Some(cursor.encode()?),
        more,
        skipped: warnings,
    })
}

/// Why an order was not turned into an event.
#[derive(Debug)]
enum Failure {
    Plugin(PluginError),
    /// Its line items need more calls than the poll has left.
    OutOfCalls,
}

impl From<PluginError> for Failure {
    fn from(error: PluginError) -> Self {
        Self::Plugin(error)
    }
}

/// Where polling is. Its text form, the `next-cursor` the gateway stores, is JSON:
///
/// ```json
/// {"since":"2026-01-01T00:00:00Z","after":"eyJsYXN0X2lkIjo…","sent":{"820982911946154508":"2026-01-01T09:15:00Z"}}
/// ```
///
/// - `since`: the run's lower bound, `updated_at:>='since'` (UTC, whole seconds);
/// - `after`: Shopify's cursor of the last order the run read (the `endCursor` of its last page,
///   or an order's own cursor when a poll ran out of calls), absent when a run starts;
/// - `sent`: orders already sent (REST id → the `updatedAt` they were sent at), recent enough to
///   be listed again: an order listed with the `updatedAt` it was sent at is not sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub since: TimestampMs,
    pub after: Option<String>,
    pub sent: BTreeMap<String, TimestampMs>,
    /// The `updatedAt` of the last order of the page being read (not part of the text form).
    position: Option<TimestampMs>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorText {
    since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sent: BTreeMap<String, String>,
}

impl Cursor {
    /// The first run: the orders updated since `since`.
    pub fn start(since: TimestampMs) -> Self {
        Self {
            since: whole_second(since),
            after: None,
            sent: BTreeMap::new(),
            position: None,
        }
    }

    pub fn decode(text: &str) -> Result<Self, PluginError> {
        let unreadable = |why: String| {
            PluginError::permanent(format!(
                "cursor `{text}` is not one this plugin wrote: {why}"
            ))
        };
        let wire: CursorText = serde_json::from_str(text).map_err(|e| unreadable(e.to_string()))?;
        let at =
            |value: &str| time::parse_rfc3339(value).map_err(|e| unreadable(e.message().into()));
        let sent = wire
            .sent
            .iter()
            .map(|(id, value)| Ok((id.clone(), at(value)?)))
            .collect::<Result<_, PluginError>>()?;
        Ok(Self {
            since: at(&wire.since)?,
            after: wire.after,
            sent,
            position: None,
        })
    }

    pub fn encode(&self) -> Result<String, PluginError> {
        let sent = self
            .sent
            .iter()
            .map(|(id, at)| Ok((id.clone(), time::format_rfc3339(*at)?)))
            .collect::<Result<_, PluginError>>()?;
        json::to_vec(&CursorText {
            since: time::format_rfc3339(self.since)?,
            after: self.after.clone(),
            sent,
        })
        .and_then(|bytes| {
            String::from_utf8(bytes)
                .map_err(|e| PluginError::permanent(format!("cannot encode the cursor: {e}")))
        })
    }

    /// The call reading the page this cursor points at.
    pub fn orders_call(&self) -> Result<Call, PluginError> {
        Ok(Call {
            query: ORDERS_QUERY,
            variables: json!({
                "search": format!("updated_at:>='{}'", time::format_rfc3339(self.since)?),
                "after": self.after,
            }),
        })
    }

    /// Stops a page early, after the order whose cursor is `read_up_to` (none: before the
    /// page's first order, where it started).
    fn stop_after(&mut self, read_up_to: Option<String>, now: TimestampMs) {
        if let Some(edge) = read_up_to {
            self.after = Some(edge);
        }
        if let Some(position) = self.position {
            self.forget_before(position.min(now - SETTLE_MS));
        }
    }

    /// Moves past the page just read; whether more pages wait.
    fn turn_page(&mut self, info: Option<PageInfo>, now: TimestampMs) -> Result<bool, PluginError> {
        match info {
            Some(PageInfo {
                has_next_page: true,
                end_cursor,
            }) => {
                let after = end_cursor.ok_or_else(|| {
                    PluginError::permanent(
                        "shopify said more orders follow but gave no `endCursor`",
                    )
                })?;
                self.after = Some(after);
                // Sorted by `updatedAt`, the run lists nothing older than the page's last
                // order again; the next run starts no later than `now - SETTLE_MS`.
                if let Some(position) = self.position {
                    self.forget_before(position.min(now - SETTLE_MS));
                }
                Ok(true)
            }
            _ => {
                // Every order updated before the latest one seen was listed (the search is
                // sorted by `updatedAt`); the same second may still receive changes.
                let restart = match self.sent.values().max() {
                    Some(latest) => (*latest).min(now - SETTLE_MS).max(self.since),
                    None => self.since,
                };
                self.since = whole_second(restart);
                self.after = None;
                self.forget_before(self.since);
                Ok(false)
            }
        }
    }

    /// Forgets the orders sent before `floor` (they are not listed again), then the oldest
    /// beyond [`MAX_SENT`].
    fn forget_before(&mut self, floor: TimestampMs) {
        self.sent.retain(|_, at| *at >= floor);
        if self.sent.len() > MAX_SENT {
            let mut by_age: Vec<(TimestampMs, String)> =
                self.sent.iter().map(|(id, at)| (*at, id.clone())).collect();
            by_age.sort();
            let excess = self.sent.len() - MAX_SENT;
            for (_, id) in by_age.into_iter().take(excess) {
                self.sent.remove(&id);
            }
        }
    }
}

fn whole_second(ms: TimestampMs) -> TimestampMs {
    ms - ms.rem_euclid(1000)
}

#[derive(Debug, Deserialize)]
struct OrdersData {
    orders: OrderConnection,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderConnection {
    edges: Vec<Edge>,
    page_info: Option<PageInfo>,
}

#[derive(Debug, Deserialize)]
struct Edge {
    cursor: String,
    node: OrderNode,
}

#[derive(Debug, Deserialize)]
struct LinesData {
    order: Option<LinesOrder>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinesOrder {
    line_items: Page<LineNode>,
}

/// An `Order` as [`ORDERS_QUERY`] selects it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderNode {
    id: String,
    name: Option<String>,
    currency_code: String,
    created_at: String,
    updated_at: String,
    cancelled_at: Option<String>,
    cancel_reason: Option<String>,
    note: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    /// Nullable in Shopify's schema.
    display_financial_status: Option<String>,
    #[serde(default)]
    payment_gateway_names: Vec<String>,
    customer: Option<CustomerNode>,
    subtotal_price_set: Option<MoneyBag>,
    total_shipping_price_set: Option<MoneyBag>,
    total_tax_set: Option<MoneyBag>,
    total_price_set: Option<MoneyBag>,
    shipping_address: Option<MailingAddress>,
    line_items: Page<LineNode>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerNode {
    first_name: Option<String>,
    last_name: Option<String>,
    default_email_address: Option<EmailAddress>,
    default_phone_number: Option<PhoneNumber>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmailAddress {
    email_address: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneNumber {
    phone_number: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoneyBag {
    shop_money: MoneyV2,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoneyV2 {
    amount: String,
    currency_code: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MailingAddress {
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    province: Option<String>,
    province_code: Option<String>,
    zip: Option<String>,
    #[serde(rename = "countryCodeV2")]
    country_code_v2: Option<String>,
    phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineNode {
    id: String,
    sku: Option<String>,
    title: String,
    variant_title: Option<String>,
    quantity: u32,
    original_unit_price_set: Option<MoneyBag>,
    #[serde(default)]
    custom_attributes: Vec<Attribute>,
    variant: Option<VariantRef>,
}

#[derive(Debug, Clone, Deserialize)]
struct Attribute {
    key: String,
    value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct VariantRef {
    id: String,
}

impl OrderNode {
    /// The order's REST id and the time of its last change.
    fn key(&self) -> Result<(String, TimestampMs), PluginError> {
        let id = graphql::legacy_id("Order", &self.id)?;
        let updated_at =
            time::parse_rfc3339(&self.updated_at).map_err(|e| order::in_field("updatedAt", e))?;
        Ok((id.to_string(), updated_at))
    }

    /// What the order's webhook would have said: `orders/cancelled` for a cancelled order (a
    /// cancelled order Daifa never saw is not one to ship), else `orders/updated`. Reads the
    /// line items beyond the first page through `send`.
    fn into_event(
        mut self,
        send: &mut impl FnMut(&Call) -> Result<Vec<u8>, PluginError>,
        calls_left: &mut usize,
    ) -> Result<ChannelEvent, Failure> {
        let id = graphql::legacy_id("Order", &self.id)?;
        if let Some(cancelled_at) = self.cancelled_at.as_deref() {
            // The enum's values are the REST reasons upper-cased (CUSTOMER, customer).
            let reason = self.cancel_reason.map(|r| r.to_ascii_lowercase());
            return Ok(ChannelEvent::OrderCancelled(order::cancellation(
                id,
                reason,
                "cancelledAt",
                cancelled_at,
            )?));
        }
        let first = std::mem::replace(
            &mut self.line_items,
            Page {
                nodes: Vec::new(),
                page_info: None,
            },
        );
        let lines = all_lines(&self.id, first, send, calls_left)?;
        Ok(ChannelEvent::OrderPlaced(
            self.into_parts(lines)?.into_order()?,
        ))
    }

    fn into_parts(self, lines: Vec<LineNode>) -> Result<Parts, PluginError> {
        let required = |field: &str, bag: Option<MoneyBag>| {
            bag.map(|b| graphql_amount(field, b))
                .ok_or_else(|| order::missing(field))
        };
        let subtotal = required("subtotalPriceSet", self.subtotal_price_set)?;
        let tax = required("totalTaxSet", self.total_tax_set)?;
        let total = required("totalPriceSet", self.total_price_set)?;
        let shipping = vec![required(
            "totalShippingPriceSet",
            self.total_shipping_price_set,
        )?];
        let (first_name, last_name, customer_email, customer_phone) = match self.customer {
            Some(c) => (
                c.first_name,
                c.last_name,
                c.default_email_address.and_then(|e| e.email_address),
                c.default_phone_number.and_then(|p| p.phone_number),
            ),
            None => (None, None, None, None),
        };
        let shipping_address = self.shipping_address.map(|a| AddressParts {
            name: a.name,
            first_name: a.first_name,
            last_name: a.last_name,
            company: a.company,
            address1: a.address1,
            address2: a.address2,
            city: a.city,
            province: a.province,
            province_code: a.province_code,
            zip: a.zip,
            country_code: a.country_code_v2,
            phone: a.phone,
        });
        let lines = lines
            .into_iter()
            .map(LineNode::into_parts)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Parts {
            shape: Shape::Graphql,
            id: graphql::legacy_id("Order", &self.id)?,
            name: self.name,
            currency: self.currency_code,
            created_at: self.created_at,
            note: self.note,
            customer_first_name: first_name,
            customer_last_name: last_name,
            // The order's own contact first, as the REST `email` before the customer's.
            emails: vec![self.email, customer_email],
            phones: vec![self.phone, customer_phone],
            subtotal,
            tax,
            total,
            shipping,
            shipping_address,
            lines,
            financial_status: self.display_financial_status,
            payment_gateway_names: self.payment_gateway_names,
            updated_at: Some(self.updated_at),
        })
    }
}

impl LineNode {
    fn into_parts(self) -> Result<LineParts, PluginError> {
        let unit_price = self
            .original_unit_price_set
            .map(|b| graphql_amount("lineItems.originalUnitPriceSet", b))
            .ok_or_else(|| order::missing("lineItems.originalUnitPriceSet"))?;
        let variant_id = self
            .variant
            .map(|v| graphql::legacy_id("ProductVariant", &v.id))
            .transpose()?;
        Ok(LineParts {
            id: graphql::legacy_id("LineItem", &self.id)?,
            sku: self.sku,
            variant_id,
            title: self.title,
            variant_title: self.variant_title,
            quantity: self.quantity,
            unit_price,
            properties: self
                .custom_attributes
                .into_iter()
                .map(|a| (a.key, a.value.unwrap_or_default()))
                .collect(),
        })
    }
}

fn graphql_amount(field: &str, bag: MoneyBag) -> Amount {
    Amount {
        field: format!("{field}.shopMoney"),
        amount: bag.shop_money.amount,
        currency_code: Some(bag.shop_money.currency_code),
    }
}

/// Every line item of the order `order_gid`: the first page, as the orders query read it, and the
/// rest through [`ORDER_LINES_QUERY`], a call each, taken from `calls_left`.
fn all_lines(
    order_gid: &str,
    first: Page<LineNode>,
    send: &mut impl FnMut(&Call) -> Result<Vec<u8>, PluginError>,
    calls_left: &mut usize,
) -> Result<Vec<LineNode>, Failure> {
    let mut lines = first.nodes;
    let mut info = first.page_info;
    while let Some(PageInfo {
        has_next_page: true,
        end_cursor,
    }) = info
    {
        let after = end_cursor.ok_or_else(|| {
            PluginError::bad_payload("shopify said more line items follow but gave no `endCursor`")
        })?;
        *calls_left = calls_left.checked_sub(1).ok_or(Failure::OutOfCalls)?;
        let call = Call {
            query: ORDER_LINES_QUERY,
            variables: json!({ "id": order_gid, "after": after }),
        };
        let data: LinesData = graphql::data("the order lines query", &send(&call)?)?;
        // Deleted since it was listed: nothing left to place.
        let order = data.order.ok_or_else(|| {
            PluginError::bad_payload("the order was not found when its line items were read")
        })?;
        lines.extend(order.line_items.nodes);
        info = order.line_items.page_info;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;
