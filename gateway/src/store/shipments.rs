//! Shipments, their registrations with the carrier connections, and the scans those report.
//! This module owns the `shipments`, `tracking_registrations` and `tracking_events` tables: a
//! shipment's write-back status (fulfilment's) and its tracking columns (tracking's) alike.

use crate::db::{Conn, Db, Tx, new_id, now_ms};
use daifa_plugin_host::LineQuantity;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// Where a shipment stands with the storefront: `received` from the supplier, then
/// `written_back` (the only move, made once, by compare-and-set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipmentStatus {
    Received,
    WrittenBack,
}

impl ShipmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::WrittenBack => "written_back",
        }
    }
}

/// Tracking statuses after which a parcel is no longer followed (nor polled).
pub const FINAL_STATUSES: [&str; 2] = ["delivered", "expired"];

/// A shipment a supplier reported, to store.
pub struct NewShipment<'a> {
    pub id: &'a str,
    pub order_id: &'a str,
    pub supplier_order_id: &'a str,
    pub carrier_code: &'a str,
    pub tracking_number: &'a str,
    pub tracking_url: Option<&'a str>,
    pub shipped_at_ms: i64,
    /// The lines it carries, as JSON text.
    pub lines: &'a str,
}

/// Stores a shipment as `received`, once per supplier order and tracking number. Returns
/// whether it is new.
pub async fn insert(tx: &mut Tx, shipment: NewShipment<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "insert into shipments (id, order_id, supplier_order_id, carrier_code, tracking_number, tracking_url, shipped_at_ms, lines, status, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9) on conflict (supplier_order_id, tracking_number) do nothing",
    )
    .bind(shipment.id)
    .bind(shipment.order_id)
    .bind(shipment.supplier_order_id)
    .bind(shipment.carrier_code)
    .bind(shipment.tracking_number)
    .bind(shipment.tracking_url)
    .bind(shipment.shipped_at_ms)
    .bind(shipment.lines)
    .bind(now_ms())
    .bind(ShipmentStatus::Received.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() != 0)
}

/// A shipment as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct ShipmentView {
    pub id: String,
    pub supplier_order_id: String,
    pub carrier_code: String,
    pub tracking_number: String,
    pub tracking_url: Option<String>,
    pub shipped_at_ms: i64,
    pub lines: Vec<LineQuantity>,
    /// `received` from the supplier, then `written_back` to the storefront.
    pub status: String,
    /// The storefront's id of the fulfillment.
    pub external_id: Option<String>,
    /// Where the parcel is, as the carrier connections report (`in_transit`, `delivered`...);
    /// none before the first report.
    pub tracking_status: Option<String>,
    /// What exactly happened, when the carrier said more (`customs_held`, `refused`...).
    pub tracking_detail: Option<String>,
    pub tracking_updated_at_ms: Option<i64>,
    pub estimated_delivery_ms: Option<i64>,
    pub delivered_at_ms: Option<i64>,
}

const SHIPMENT_COLUMNS: &str = "id, order_id, supplier_order_id, carrier_code, tracking_number, tracking_url, shipped_at_ms, lines, status, external_id, \
                                tracking_status, tracking_detail, tracking_updated_at_ms, estimated_delivery_ms, delivered_at_ms";

fn shipment_from_row(r: &AnyRow) -> anyhow::Result<(String, ShipmentView)> {
    Ok((
        r.try_get("order_id")?,
        ShipmentView {
            id: r.try_get("id")?,
            supplier_order_id: r.try_get("supplier_order_id")?,
            carrier_code: r.try_get("carrier_code")?,
            tracking_number: r.try_get("tracking_number")?,
            tracking_url: r.try_get("tracking_url")?,
            shipped_at_ms: r.try_get("shipped_at_ms")?,
            lines: serde_json::from_str(&r.try_get::<String, _>("lines")?)?,
            status: r.try_get("status")?,
            external_id: r.try_get("external_id")?,
            tracking_status: r.try_get("tracking_status")?,
            tracking_detail: r.try_get("tracking_detail")?,
            tracking_updated_at_ms: r.try_get("tracking_updated_at_ms")?,
            estimated_delivery_ms: r.try_get("estimated_delivery_ms")?,
            delivered_at_ms: r.try_get("delivered_at_ms")?,
        },
    ))
}

/// An order's shipments, first stored first.
pub async fn of_order(conn: &mut Conn, order_id: &str) -> anyhow::Result<Vec<ShipmentView>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {SHIPMENT_COLUMNS} from shipments where order_id = $1 order by created_at_ms, id"
    )))
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| shipment_from_row(r).map(|(_, s)| s))
        .collect()
}

/// A shipment, with the id of its order.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<(String, ShipmentView)>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {SHIPMENT_COLUMNS} from shipments where id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(shipment_from_row).transpose()
}

/// Moves a shipment from `received` to `written_back` with the storefront's id of its
/// fulfillment (compare-and-set). Returns whether it moved.
pub async fn mark_written_back(tx: &mut Tx, id: &str, external_id: &str) -> sqlx::Result<bool> {
    let moved = sqlx::query(
        "update shipments set status = $1, external_id = $2 where id = $3 and status = $4",
    )
    .bind(ShipmentStatus::WrittenBack.as_str())
    .bind(external_id)
    .bind(id)
    .bind(ShipmentStatus::Received.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// When the order was delivered: its last shipment's delivery.
pub async fn last_delivered_at(tx: &mut Tx, order_id: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("select max(delivered_at_ms) from shipments where order_id = $1")
        .bind(order_id)
        .fetch_one(&mut **tx)
        .await
}

/// The latest shipment of a supplier order.
pub async fn latest_of(tx: &mut Tx, supplier_order_id: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "select id from shipments where supplier_order_id = $1 order by created_at_ms desc limit 1",
    )
    .bind(supplier_order_id)
    .fetch_optional(&mut **tx)
    .await
}

/// How many shipments an order has, and how many of them are written back to the storefront.
pub async fn count_of(tx: &mut Tx, order_id: &str) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query(
        "select count(*) as shipped, cast(coalesce(sum(case when status = 'written_back' then 1 else 0 end), 0) as bigint) as written \
         from shipments where order_id = $1",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row.try_get("shipped")?, row.try_get("written")?))
}

/// The lines a shipment carried.
pub async fn lines_in(tx: &mut Tx, shipment_id: &str) -> anyhow::Result<Vec<LineQuantity>> {
    let lines: String = sqlx::query_scalar("select lines from shipments where id = $1")
        .bind(shipment_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(serde_json::from_str(&lines)?)
}

/// How many of an order's shipments are not delivered.
pub async fn undelivered_of_order(tx: &mut Tx, order_id: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from shipments where order_id = $1 and (tracking_status is null or tracking_status <> 'delivered')",
    )
    .bind(order_id)
    .fetch_one(&mut **tx)
    .await
}

/// A shipment as a carrier is asked to follow it.
pub struct ParcelRow {
    pub id: String,
    pub order_id: String,
    pub carrier_code: String,
    pub tracking_number: String,
    pub shipped_at_ms: i64,
}

fn parcel_from_row(r: &AnyRow) -> sqlx::Result<ParcelRow> {
    Ok(ParcelRow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        carrier_code: r.try_get("carrier_code")?,
        tracking_number: r.try_get("tracking_number")?,
        shipped_at_ms: r.try_get("shipped_at_ms")?,
    })
}

/// A shipment's parcel row.
pub async fn parcel(db: &Db, id: &str) -> sqlx::Result<Option<ParcelRow>> {
    let row = sqlx::query(
        "select id, order_id, carrier_code, tracking_number, shipped_at_ms from shipments where id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(parcel_from_row).transpose()
}

/// The shipments a carrier connection follows that have not reached a final status, by id,
/// after `after` (a shipment id; `""` from the start), at most `limit`.
pub async fn followed_by(
    db: &Db,
    connection_id: &str,
    after: &str,
    limit: i64,
) -> sqlx::Result<Vec<ParcelRow>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select s.id, s.order_id, s.carrier_code, s.tracking_number, s.shipped_at_ms \
         from tracking_registrations r join shipments s on s.id = r.shipment_id \
         where r.connection_id = $1 and s.id > $2 and (s.tracking_status is null or s.tracking_status not in ({})) \
         order by s.id limit $3",
        FINAL_STATUSES.map(|s| format!("'{s}'")).join(", ")
    )))
    .bind(connection_id)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(parcel_from_row).collect()
}

/// Records that a carrier connection follows a shipment, once per shipment and connection.
pub async fn register(
    tx: &mut Tx,
    shipment_id: &str,
    connection_id: &str,
    carrier_code: Option<&str>,
    external_id: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into tracking_registrations (shipment_id, connection_id, carrier_code, external_id, registered_at_ms) \
         values ($1, $2, $3, $4, $5) on conflict (shipment_id, connection_id) do nothing",
    )
    .bind(shipment_id)
    .bind(connection_id)
    .bind(carrier_code)
    .bind(external_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Where a shipment's tracking stood before an update.
pub struct Tracked {
    pub id: String,
    pub order_id: String,
    pub tracking_status: Option<String>,
    pub tracking_detail: Option<String>,
    pub tracking_updated_at_ms: Option<i64>,
}

/// The shipments with a tracking number, by id.
pub async fn with_tracking_number(
    tx: &mut Tx,
    tracking_number: &str,
) -> sqlx::Result<Vec<Tracked>> {
    sqlx::query(
        "select id, order_id, tracking_status, tracking_detail, tracking_updated_at_ms from shipments where tracking_number = $1 order by id",
    )
    .bind(tracking_number)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(Tracked {
            id: r.try_get("id")?,
            order_id: r.try_get("order_id")?,
            tracking_status: r.try_get("tracking_status")?,
            tracking_detail: r.try_get("tracking_detail")?,
            tracking_updated_at_ms: r.try_get("tracking_updated_at_ms")?,
        })
    })
    .collect()
}

/// One scan a carrier reported, statuses by their stored names.
pub struct NewScan<'a> {
    pub shipment_id: &'a str,
    pub status: &'a str,
    pub detail: Option<&'a str>,
    pub description: &'a str,
    pub location: Option<&'a str>,
    pub occurred_at_ms: i64,
    pub raw_request_id: &'a str,
}

/// Keeps a scan, once per shipment, time and description. Returns how many were new (0 or 1).
pub async fn record_scan(tx: &mut Tx, scan: NewScan<'_>) -> sqlx::Result<u64> {
    let inserted = sqlx::query(
        "insert into tracking_events (id, shipment_id, status, detail, description, location, occurred_at_ms, raw_request_id, created_at_ms) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) on conflict (shipment_id, occurred_at_ms, description) do nothing",
    )
    .bind(new_id("trk"))
    .bind(scan.shipment_id)
    .bind(scan.status)
    .bind(scan.detail)
    .bind(scan.description)
    .bind(scan.location)
    .bind(scan.occurred_at_ms)
    .bind(scan.raw_request_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected())
}

/// A shipment's tracking as of an update.
pub struct Tracking<'a> {
    pub status: &'a str,
    pub detail: Option<&'a str>,
    pub at_ms: i64,
    /// Kept when the update has none.
    pub estimated_delivery_ms: Option<i64>,
    /// Kept when the update has none.
    pub delivered_at_ms: Option<i64>,
}

/// Sets a shipment's tracking columns.
pub async fn set_tracking(
    tx: &mut Tx,
    shipment_id: &str,
    tracking: Tracking<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update shipments set tracking_status = $1, tracking_detail = $2, tracking_updated_at_ms = $3, \
         estimated_delivery_ms = coalesce($4, estimated_delivery_ms), delivered_at_ms = coalesce($5, delivered_at_ms) where id = $6",
    )
    .bind(tracking.status)
    .bind(tracking.detail)
    .bind(tracking.at_ms)
    .bind(tracking.estimated_delivery_ms)
    .bind(tracking.delivered_at_ms)
    .bind(shipment_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One scan as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct TrackingEventView {
    pub shipment_id: String,
    pub status: String,
    pub detail: Option<String>,
    pub description: String,
    pub location: Option<String>,
    pub occurred_at_ms: i64,
}

/// The scans of an order's shipments, oldest first.
pub async fn scans_of_order(
    conn: &mut Conn,
    order_id: &str,
) -> anyhow::Result<Vec<TrackingEventView>> {
    let rows = sqlx::query(
        "select e.shipment_id, e.status, e.detail, e.description, e.location, e.occurred_at_ms from tracking_events e \
         join shipments s on s.id = e.shipment_id where s.order_id = $1 order by e.occurred_at_ms, e.id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TrackingEventView {
                shipment_id: r.try_get("shipment_id")?,
                status: r.try_get("status")?,
                detail: r.try_get("detail")?,
                description: r.try_get("description")?,
                location: r.try_get("location")?,
                occurred_at_ms: r.try_get("occurred_at_ms")?,
            })
        })
        .collect()
}

/// Where a shipment's tracking stands, for the follow-up clocks: its status, number, carrier
/// and how many scans were kept.
pub struct Followed {
    pub tracking_status: Option<String>,
    pub tracking_number: String,
    pub carrier_code: String,
    pub scans: i64,
}

/// Where a shipment's tracking stands.
pub async fn followed(tx: &mut Tx, shipment_id: &str) -> sqlx::Result<Option<Followed>> {
    let row = sqlx::query(
        "select tracking_status, tracking_number, carrier_code, (select count(*) from tracking_events where shipment_id = $1) as scans \
         from shipments where id = $1",
    )
    .bind(shipment_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| {
        Ok(Followed {
            tracking_status: r.try_get("tracking_status")?,
            tracking_number: r.try_get("tracking_number")?,
            carrier_code: r.try_get("carrier_code")?,
            scans: r.try_get("scans")?,
        })
    })
    .transpose()
}
