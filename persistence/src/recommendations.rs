//! What the recommendations were counting when the node stopped: each product's strongest
//! neighbours (bought or viewed together) with their scores, saved by the node that
//! counted them, so a restart picks up where it was instead of starting over.
//!
//! Per node: on a cluster every node counts its share of the stream, and the answer is the
//! sum of the shares (`workflow::recommendations::sum_shares`). Saved on a timer and at a
//! graceful stop, through the group commit (`WriteOp::SaveNeighbours`): a crash loses the
//! counts since the last save, which recommendations tolerate.

use async_trait::async_trait;
use engine::ProductId;
use serde::{Deserialize, Serialize};

use crate::database::{Database, Sql, Transaction, dialects};
use crate::error::StoreError;
use crate::ledger::OrderLedger;
use crate::row::{StoredRow, int};
use crate::write::WriteOp;

/// One product's neighbours, strongest first or not: the reader ranks them.
#[derive(Clone, Debug, PartialEq)]
pub struct NeighbourList {
    pub product_id: ProductId,
    pub neighbours: Vec<Neighbour>,
}

/// A neighbour's score as of `at_ms` (scores decay from there).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    #[serde(rename = "p")]
    pub product_id: ProductId,
    #[serde(rename = "s")]
    pub score: f64,
    #[serde(rename = "t")]
    pub at_ms: u64,
}

#[async_trait]
pub trait RecommendationStore: Send + Sync + 'static {
    /// Every list `node` saved.
    async fn neighbour_lists(&self, node: &str) -> Result<Vec<NeighbourList>, StoreError>;

    /// Replaces the saved lists of these products for `node`.
    async fn save_neighbour_lists(
        &self,
        node: &str,
        lists: &[NeighbourList],
    ) -> Result<(), StoreError>;
}

const LISTS: Sql = Sql::both("SELECT product_id, neighbours FROM co_occurrence WHERE node = $1");

const PUT_LIST: Sql = Sql::both(
    "INSERT INTO co_occurrence (node, product_id, neighbours) VALUES ($1, $2, $3) \
     ON CONFLICT (node, product_id) DO UPDATE SET neighbours = excluded.neighbours",
);

#[async_trait]
impl RecommendationStore for Database {
    async fn neighbour_lists(&self, node: &str) -> Result<Vec<NeighbourList>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&LISTS))
                .bind(node)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    let text = row.text("neighbours")?;
                    let neighbours = serde_json::from_str(&text).map_err(|error| {
                        StoreError::Decode(format!("co_occurrence neighbours: {error}"))
                    })?;
                    Ok(NeighbourList {
                        product_id: row.product_id("product_id")?,
                        neighbours,
                    })
                })
                .collect()
        })
    }

    async fn save_neighbour_lists(
        &self,
        node: &str,
        lists: &[NeighbourList],
    ) -> Result<(), StoreError> {
        self.commit(&[WriteOp::SaveNeighbours {
            node: node.to_owned(),
            lists: lists.to_vec(),
        }])
        .await
    }
}

/// Writes the lists in the batch's transaction.
pub(crate) async fn put_lists(
    tx: &mut Transaction<'_>,
    node: &str,
    lists: &[NeighbourList],
) -> Result<(), StoreError> {
    for list in lists {
        let neighbours = serde_json::to_string(&list.neighbours)
            .map_err(|error| StoreError::Decode(format!("neighbours to JSON: {error}")))?;
        dialects!(&mut *tx, |tx, D| {
            sqlx::query(D::sql(&PUT_LIST))
                .bind(node)
                .bind(int(list.product_id.0)?)
                .bind(neighbours.as_str())
                .execute(&mut **tx)
                .await?;
        });
    }
    Ok(())
}
