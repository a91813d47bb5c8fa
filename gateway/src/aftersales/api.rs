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
    let history: Vec<Value> = cases::history_of(&mut tx, id)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "action": e.action, "from": e.from_state, "to": e.to_state, "by": e.actor,
                "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
                "at_ms": e.at_ms,
            })
        })
        .collect();
    let proposal = proposal(&mut tx, &case).await?;
    let notes: Vec<Value> = cases::return_notes_of(&mut tx, id)
        .await?
        .into_iter()
        .map(|n| {
            json!({ "id": n.id, "defect": n.defect,
                    "deduction_minor": n.deduction_minor, "currency": n.currency,
                    "lines": serde_json::from_str::<Value>(&n.lines).unwrap_or(Value::Null) })
        })
        .collect();
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
    let rows = cases::list(
        &state.db,
        q.state.as_deref().unwrap_or(""),
        q.order_id.as_deref().unwrap_or(""),
        q.open,
    )
    .await?;
    let cases = rows
        .into_iter()
        .map(of_row)
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
