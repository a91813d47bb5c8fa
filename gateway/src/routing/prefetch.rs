//! The catalogue a batch of new orders is routed on, read once for the batch: the offers and
//! products of every SKU the batch's orders name, two statements per channel instead of two
//! per order.
//!
//! The ingest writer reads it ([`read`]) in the batch's transaction before the first webhook
//! and runs the batch [`with`] it; routing and the order's context take their offers and
//! products from it ([`offers`], [`products`]) when it holds every SKU they ask for, and read
//! the store otherwise. Nothing a new order does writes offers or products; what can (a
//! supplier's catalogue event, any webhook that is not new orders) makes the writer
//! [`forget`] it for the rest of the batch before it runs.

use crate::store::offers::{self, Offer, Product};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The offers and products of some SKUs, per channel connection.
#[derive(Default)]
pub struct Catalogue {
    channels: HashMap<String, Channel>,
}

#[derive(Default)]
struct Channel {
    /// The SKUs read (with offers and products or without).
    skus: HashSet<String>,
    /// As the store gives them: a SKU's by priority, then id.
    offers: Vec<Offer>,
    products: BTreeMap<String, Product>,
}

tokio::task_local! {
    static CATALOGUE: RefCell<Option<Catalogue>>;
}

/// Reads the offers and products of `wanted` (channel connection id, storefront SKU) on `conn`.
pub async fn read<'a>(
    conn: &mut sqlx::AnyConnection,
    wanted: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> anyhow::Result<Catalogue> {
    let mut by_channel: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (channel, sku) in wanted {
        by_channel.entry(channel).or_default().push(sku);
    }
    let mut catalogue = Catalogue::default();
    for (channel, mut skus) in by_channel {
        skus.sort_unstable();
        skus.dedup();
        let mut read = Channel::default();
        // Below the databases' bind limits whatever the batch holds. Each SKU is in one chunk:
        // its offers stay in the store's order (by priority, then id), which is all routing
        // reads of it (it takes a line's offers by SKU).
        for chunk in skus.chunks(1_000) {
            read.offers
                .extend(offers::for_skus(conn, channel, chunk).await?);
            read.products
                .extend(offers::products_for(conn, channel, chunk).await?);
            read.skus.extend(chunk.iter().map(|s| s.to_string()));
        }
        catalogue.channels.insert(channel.to_string(), read);
    }
    Ok(catalogue)
}

/// Runs `work` with `catalogue` for its routing reads (until [`forget`]).
pub async fn with<F: Future>(catalogue: Catalogue, work: F) -> F::Output {
    CATALOGUE.scope(RefCell::new(Some(catalogue)), work).await
}

/// Drops the catalogue of this task's scope: what runs next may change offers or products.
pub fn forget() {
    let _ = CATALOGUE.try_with(|c| c.borrow_mut().take());
}

/// What `f` finds in the catalogue of `channel`, if this task has one that read every SKU of
/// `skus`.
fn lookup<T>(channel: &str, skus: &[&str], f: impl FnOnce(&Channel) -> T) -> Option<T> {
    CATALOGUE
        .try_with(|c| {
            let c = c.borrow();
            let read = c.as_ref()?.channels.get(channel)?;
            skus.iter()
                .all(|sku| read.skus.contains(*sku))
                .then(|| f(read))
        })
        .ok()
        .flatten()
}

/// The offers of `skus` for `channel`, as [`offers::for_skus`] gives them, if read.
pub fn offers(channel: &str, skus: &[&str]) -> Option<Vec<Offer>> {
    lookup(channel, skus, |read| {
        read.offers
            .iter()
            .filter(|o| skus.contains(&o.storefront_sku.as_str()))
            .cloned()
            .collect()
    })
}

/// The products of `skus` for `channel`, as [`offers::products_for`] gives them, if read.
pub fn products(channel: &str, skus: &[&str]) -> Option<BTreeMap<String, Product>> {
    lookup(channel, skus, |read| {
        skus.iter()
            .filter_map(|sku| Some((sku.to_string(), read.products.get(*sku)?.clone())))
            .collect()
    })
}
