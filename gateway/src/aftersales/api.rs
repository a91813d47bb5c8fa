//! The cases API: `/api/v1/cases`, `/cases/{id}`, `/cases/{id}/actions`.

use super::*;

use crate::error::operator;

/// A case with its history, what it may do next, and the handbook's proposal.
async fn describe(state: &Services, id: &str) -> ApiResult<Value> {
    // Reads only, from one snapshot.
    let mut tx = state.db.snapshot().await?;
    let case = get_in(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no case `{id}`")))?;
    let history: Vec<Value> = sqlx::query(
        "select action, from_state, to_state, actor, detail, at_ms from case_events where case_id = $1 order by at_ms, id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({
            "action": r.try_get::<String, _>("action")?, "from": r.try_get::<Option<String>, _>("from_state")?,
            "to": r.try_get::<String, _>("to_state")?, "by": r.try_get::<String, _>("actor")?,
            "detail": serde_json::from_str::<Value>(&r.try_get::<String, _>("detail")?).unwrap_or(Value::Null),
            "at_ms": r.try_get::<i64, _>("at_ms")?,
        }))
    })
    .collect::<Result<_, sqlx::Error>>()?;
    let proposal = proposal(&mut tx, &case).await?;
    let notes: Vec<Value> = sqlx::query(
        "select id, lines, defect, deduction_minor, currency, created_at_ms from return_notes where case_id = $1 order by created_at_ms",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| {
        Ok(json!({ "id": r.try_get::<String, _>("id")?, "defect": r.try_get::<Option<String>, _>("defect")?,
                   "deduction_minor": r.try_get::<Option<i64>, _>("deduction_minor")?, "currency": r.try_get::<Option<String>, _>("currency")?,
                   "lines": serde_json::from_str::<Value>(&r.try_get::<String, _>("lines")?).unwrap_or(Value::Null) }))
    })
    .collect::<Result<_, sqlx::Error>>()?;
    tx.rollback().await?;
    Ok(json!({
        "case": case,
        "allowed": machine::allowed(case.kind, case.state),
        "history": history,
        "proposal": proposal,
        "return_notes": notes,
    }))
}

async fn open_handler(
    State(state): State<Services>,
    headers: HeaderMap,
    Json(new): Json<NewCase>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let by = operator(&headers);
    let mut tx = state.db.begin().await?;
    let case = open(&mut tx, new, &by).await?;
    tx.commit().await?;
    state.wake_workers();
    Ok((StatusCode::CREATED, Json(describe(&state, &case.id).await?)))
}

async fn act_handler(
    State(state): State<Services>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<ActionInput>,
) -> ApiResult<Json<Value>> {
    let by = operator(&headers);
    let mut tx = state.db.begin().await?;
    act(&mut tx, &id, input, &by).await?;
    tx.commit().await?;
    state.wake_workers();
    Ok(Json(describe(&state, &id).await?))
}

async fn get_handler(
    State(state): State<Services>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(describe(&state, &id).await?))
}

#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    pub state: Option<String>,
    pub order_id: Option<String>,
    /// Only the cases not closed.
    #[serde(default)]
    pub open: bool,
}

async fn list_handler(
    State(state): State<Services>,
    Query(q): Query<CaseQuery>,
) -> ApiResult<Json<Value>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from cases where ($1 = '' or state = $1) and ($2 = '' or order_id = $2) and ($3 = 0 or state <> 'closed') \
         order by opened_at_ms desc, id desc limit 500"
    )))
    .bind(q.state.as_deref().unwrap_or(""))
    .bind(q.order_id.as_deref().unwrap_or(""))
    .bind(i64::from(q.open))
    .fetch_all(&state.db.pool)
    .await?;
    let cases = rows
        .iter()
        .map(from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Json(json!({ "cases": cases })))
}

pub fn router() -> Router<Services> {
    Router::new()
        .route("/cases", get(list_handler).post(open_handler))
        .route("/cases/{id}", get(get_handler))
        .route("/cases/{id}/actions", post(act_handler))
        .merge(clocks::router())
}
