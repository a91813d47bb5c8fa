//! Inserts put off to one multi-row statement per table: what lets the ingest writer store a
//! batch of new orders with a handful of statements instead of a dozen per order.
//!
//! A store function that appends a row no one reads back in the same transaction (an order's
//! timeline event, a routing decision, a supplier order and its lines, a job, a raw request)
//! writes it through [`insert`]; what may read such a row flushes first (the daily caps'
//! count of supplier orders). Outside a [`deferring`] scope, and inside one where the caller did not
//! [`allow`] it, the row is written at once, as any statement. Inside a scope, in a region the
//! caller allowed, the row waits in the scope's buffer until [`flush`], which writes each
//! table's waiting rows in as few statements as the database's bind limit permits.
//!
//! What keeps this correct is the caller's, and it is narrow on purpose: the ingest writer
//! (`ingest::writer`) opens the scope for its batch's transaction, allows deferral only around
//! code that inserts and never reads back what it deferred (a new order's first application,
//! a raw request's record), and flushes before anything that could read a deferred row (any
//! item that is not a new order, or names an order an earlier item of the batch touched) and
//! before it commits. A row is never lost: a flush that fails fails the transaction, as the
//! insert itself would have.

use super::{Conn, Tx};
use sqlx::AssertSqlSafe;
use std::cell::RefCell;

/// An insert statement that may be put off: `head` is `insert into t (a, b, c)` with
/// `columns` columns, `tail` what follows the values (`on conflict (k) do nothing`, or "").
pub struct Insert {
    pub head: &'static str,
    pub columns: usize,
    pub tail: &'static str,
}

/// A value of a deferred row.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bytes(Vec<u8>),
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}

impl From<String> for Bind {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<Option<&str>> for Bind {
    fn from(v: Option<&str>) -> Self {
        Self::OptText(v.map(str::to_string))
    }
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Self::OptInt(v)
    }
}

/// The rows of one scope, per statement, in the order they came.
#[derive(Default)]
struct Buffer {
    /// In a region that [`allow`]s deferral.
    allowed: bool,
    /// The caller [`suspend`]ed deferral: every insert is written at once.
    suspended: bool,
    tables: Vec<(&'static Insert, Vec<Vec<Bind>>)>,
}

tokio::task_local! {
    static BUFFER: RefCell<Buffer>;
}

/// Values a statement may bind, kept below SQLite's limit (32,766) and PostgreSQL's (65,535).
const MAX_BINDS: usize = 30_000;

/// Runs `work` in a deferring scope: inserts in the regions it [`allow`]s wait for [`flush`].
/// Whatever is still waiting when `work` ends is dropped — `work` flushes before it commits.
pub async fn deferring<F: Future>(work: F) -> F::Output {
    BUFFER.scope(RefCell::new(Buffer::default()), work).await
}

/// Lets the inserts of this task wait for [`flush`] until the guard is dropped, if it runs in a
/// [`deferring`] scope that is not [`suspend`]ed (else nothing changes). For code that inserts
/// and does not read back what it inserted.
#[must_use = "deferral ends when the guard is dropped"]
pub fn allow() -> Guard {
    set(|b| &mut b.allowed, true)
}

/// Writes every insert of this task at once until the guard is dropped, allowed or not: for
/// work that may read back what it inserts. Flush first: what waits stays waiting.
#[must_use = "the suspension ends when the guard is dropped"]
pub fn suspend() -> Guard {
    set(|b| &mut b.suspended, true)
}

fn set(flag: fn(&mut Buffer) -> &mut bool, value: bool) -> Guard {
    let before = BUFFER
        .try_with(|b| std::mem::replace(flag(&mut b.borrow_mut()), value))
        .unwrap_or(false);
    Guard { flag, before }
}

/// Puts a flag of the scope back as it was when dropped (see [`allow`], [`suspend`]).
pub struct Guard {
    flag: fn(&mut Buffer) -> &mut bool,
    before: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = BUFFER.try_with(|b| *(self.flag)(&mut b.borrow_mut()) = self.before);
    }
}

/// Writes `rows`, now (in one statement) or at the next [`flush`] (see the module's
/// documentation).
pub async fn insert(
    tx: &mut Tx,
    statement: &'static Insert,
    rows: Vec<Vec<Bind>>,
) -> sqlx::Result<()> {
    debug_assert!(
        rows.iter().all(|r| r.len() == statement.columns),
        "{}",
        statement.head
    );
    let deferring = BUFFER
        .try_with(|b| {
            let b = b.borrow();
            b.allowed && !b.suspended
        })
        .unwrap_or(false);
    if !deferring {
        return execute(tx, statement, rows).await.map(drop);
    }
    BUFFER.with(|b| {
        let mut b = b.borrow_mut();
        match b
            .tables
            .iter_mut()
            .find(|(s, _)| std::ptr::eq(*s, statement))
        {
            Some((_, waiting)) => waiting.extend(rows),
            None => b.tables.push((statement, rows)),
        }
    });
    Ok(())
}

/// Writes every row waiting in this task's scope, one statement per table (or a few, for the
/// bind limit), in the order the tables were first written.
pub async fn flush(conn: &mut Conn) -> sqlx::Result<()> {
    let tables = BUFFER
        .try_with(|b| std::mem::take(&mut b.borrow_mut().tables))
        .unwrap_or_default();
    for (statement, rows) in tables {
        execute(conn, statement, rows).await?;
    }
    Ok(())
}

/// How many rows wait in this task's scope.
pub fn waiting() -> usize {
    BUFFER
        .try_with(|b| b.borrow().tables.iter().map(|(_, rows)| rows.len()).sum())
        .unwrap_or(0)
}

/// Writes `rows` now, whatever the scope; how many the database took (an `on conflict do
/// nothing` tail may leave some out).
pub async fn execute(
    conn: &mut Conn,
    statement: &Insert,
    rows: Vec<Vec<Bind>>,
) -> sqlx::Result<u64> {
    let mut taken = 0;
    let per_statement = (MAX_BINDS / statement.columns.max(1)).max(1);
    // SQLite looks each `$N` up by name, in a list it scans from the start, when it parses the
    // statement and again (in sqlx) when it binds: a statement of n values costs n², which at
    // a batch's thousands of values was most of the writer's time. Its anonymous `?` are
    // numbered in order as they come; PostgreSQL takes only `$N`.
    let sqlite = conn.backend_name().eq_ignore_ascii_case("sqlite");
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Bind>> = rows.by_ref().take(per_statement).collect();
        let values = (0..chunk.len())
            .map(|i| {
                if sqlite {
                    format!("({})", vec!["?"; statement.columns].join(", "))
                } else {
                    format!(
                        "({})",
                        super::placeholders(1 + i * statement.columns, statement.columns)
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("{} values {values} {}", statement.head, statement.tail);
        // A statement of many rows is not kept prepared: each batch size is another text, and
        // sqlx's cache of up to 100 per pooled connection filled with statements of thousands
        // of values (about 50 MB more resident memory, measured).
        let persistent = chunk.len() == 1;
        let query = bind_all(sqlx::query(AssertSqlSafe(sql)), chunk.into_iter().flatten())
            .persistent(persistent);
        taken += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(taken)
}

/// The statement of one row (`head values ($1, …) tail`), for an executor that is not a
/// transaction (a pool).
pub fn one_row(statement: &Insert) -> String {
    format!(
        "{} values ({}) {}",
        statement.head,
        super::placeholders(1, statement.columns),
        statement.tail
    )
}

/// Binds `values` to `query`, in order.
pub fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    values: impl IntoIterator<Item = Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for value in values {
        query = match value {
            Bind::Text(v) => query.bind(v),
            Bind::OptText(v) => query.bind(v),
            Bind::Int(v) => query.bind(v),
            Bind::OptInt(v) => query.bind(v),
            Bind::Bytes(v) => query.bind(v),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    static ROW: Insert = Insert {
        head: "insert into t (k, n, b)",
        columns: 3,
        tail: "on conflict (k) do nothing",
    };

    /// A database file of its own (each connection to `sqlite::memory:` is another database),
    /// in a directory removed when the returned guard is dropped.
    async fn db(name: &str) -> (super::super::Db, Dir) {
        let dir =
            Dir(std::env::temp_dir().join(format!("daifa-deferred-{name}-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.0.join("t.db").display());
        let db = super::super::Db::connect(&url).await.unwrap();
        sqlx::query("create table t (k text primary key, n integer, b blob)")
            .execute(&db.pool)
            .await
            .unwrap();
        (db, dir)
    }

    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn row(k: &str, n: i64) -> Vec<Bind> {
        vec![k.into(), n.into(), Bind::Bytes(vec![0, 1, 2])]
    }

    async fn count(tx: &mut Tx) -> i64 {
        sqlx::query_scalar("select count(*) from t")
            .fetch_one(&mut **tx)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn rows_wait_only_where_allowed_and_not_suspended() {
        let (db, _dir) = db("allowed").await;
        let mut tx = db.pool.begin().await.unwrap();
        // Outside a scope: at once, allowed or not.
        let allowed = allow();
        insert(&mut tx, &ROW, vec![row("a", 1)]).await.unwrap();
        drop(allowed);
        assert_eq!(count(&mut tx).await, 1);
        deferring(async {
            // In a scope, not allowed: at once.
            insert(&mut tx, &ROW, vec![row("b", 2)]).await.unwrap();
            assert_eq!((count(&mut tx).await, waiting()), (2, 0));
            {
                let _allowed = allow();
                insert(&mut tx, &ROW, vec![row("c", 3), row("d", 4)])
                    .await
                    .unwrap();
                insert(&mut tx, &ROW, vec![row("a", 9)]).await.unwrap();
                assert_eq!((count(&mut tx).await, waiting()), (2, 3));
                // Suspended: at once, though allowed.
                let suspended = suspend();
                insert(&mut tx, &ROW, vec![row("e", 5)]).await.unwrap();
                assert_eq!((count(&mut tx).await, waiting()), (3, 3));
                drop(suspended);
                insert(&mut tx, &ROW, vec![row("f", 6)]).await.unwrap();
                assert_eq!(waiting(), 4);
            }
            // The guard gone: at once again.
            insert(&mut tx, &ROW, vec![row("g", 7)]).await.unwrap();
            assert_eq!((count(&mut tx).await, waiting()), (4, 4));
            flush(&mut tx).await.unwrap();
            assert_eq!((count(&mut tx).await, waiting()), (7, 0));
        })
        .await;
        // The tail applies to waiting rows too: `a` kept its first value.
        let n: i64 = sqlx::query_scalar("select n from t where k = 'a'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    #[tokio::test]
    async fn a_flush_past_the_bind_limit_writes_every_row() {
        let (db, _dir) = db("limit").await;
        let mut tx = db.pool.begin().await.unwrap();
        // 3 columns: 10,000 rows to a statement; 25,000 rows make three.
        let rows: Vec<Vec<Bind>> = (0..25_000).map(|i| row(&format!("k{i}"), i)).collect();
        deferring(async {
            let _allowed = allow();
            insert(&mut tx, &ROW, rows).await.unwrap();
            assert_eq!(waiting(), 25_000);
            flush(&mut tx).await.unwrap();
        })
        .await;
        assert_eq!(count(&mut tx).await, 25_000);
        // Rows that went nowhere (left out by the tail) are counted out.
        let again = (24_990..25_010).map(|i| row(&format!("k{i}"), i)).collect();
        assert_eq!(execute(&mut tx, &ROW, again).await.unwrap(), 10);
    }
}
