//! Sale campaigns: the announcement of a sale to every user who wishlisted its product,
//! and the reminder shortly before it starts. The campaign's runner and senders are the
//! workflow's (`workflow/src/campaigns/`); this module keeps what must survive a restart:
//! each campaign's cursor and counters, and the dedupe record of every message sent.
//!
//! Counted in messages (one per wisher and channel). A page of wishers queued again after
//! a crash is counted once (the cursor moves only from where the runner read it) and sent
//! once (a message whose delivery is recorded is skipped).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use engine::{ProductId, SaleId, UserId};
use sqlx::QueryBuilder;

use crate::database::{Backend, Database, Sql, dialects};
use crate::error::StoreError;
use crate::row::{StoredRow, int};

/// Which message of a sale's campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CampaignKind {
    /// "The sale is scheduled": sent when the sale is.
    Announcement,
    /// "The sale starts soon": sent a configured time before the start.
    Reminder,
}

impl CampaignKind {
    pub const ALL: [CampaignKind; 2] = [CampaignKind::Announcement, CampaignKind::Reminder];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignKind::Announcement => "announcement",
            CampaignKind::Reminder => "reminder",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A campaign to run when it is due.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignPlan {
    pub sale_id: SaleId,
    pub kind: CampaignKind,
    pub product_id: ProductId,
    pub due_at_ms: u64,
    /// JSON text: what every message of it says.
    pub message: String,
}

/// A campaign and how far it got.
#[derive(Clone, Debug, PartialEq)]
pub struct Campaign {
    pub plan: CampaignPlan,
    /// Messages it has to send: wishers times channels, counted when it started.
    pub total: Option<u64>,
    /// Messages queued (wishers up to the cursor, times channels).
    pub enqueued: u64,
    /// Messages sent, each once.
    pub sent: u64,
    /// Messages given up on (dead-lettered after their attempts).
    pub failed: u64,
    /// The last wisher whose messages were queued.
    pub cursor: Option<UserId>,
    /// Every wisher's messages were queued.
    pub enqueued_all: bool,
    pub started_at_ms: Option<u64>,
    /// Queued to the end, and every queued message sent or given up on; or cancelled.
    pub finished_at_ms: Option<u64>,
    /// Its sale was cancelled: nothing more is queued, and queued messages are dropped.
    pub cancelled_at_ms: Option<u64>,
}

/// One message of a campaign: its user on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignMessage {
    pub sale_id: SaleId,
    pub kind: CampaignKind,
    pub user_id: UserId,
    pub channel: String,
}

/// One message's outcome, the dedupe key of the campaign's sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CampaignDelivery {
    pub sale_id: SaleId,
    pub kind: CampaignKind,
    pub user_id: UserId,
    pub channel: String,
    /// `false`: given up on after its attempts.
    pub sent: bool,
    pub at_ms: u64,
}

#[async_trait]
pub trait CampaignStore: Send + Sync + 'static {
    /// Plans campaigns. A campaign planned before keeps its progress; one not started yet
    /// takes the new due time and message (a sale scheduled again).
    async fn plan_campaigns(&self, plans: &[CampaignPlan]) -> Result<(), StoreError>;

    /// Up to `limit` campaigns due at `now_ms` whose wishers are not all queued yet,
    /// soonest first.
    async fn due_campaigns(&self, now_ms: u64, limit: u32) -> Result<Vec<Campaign>, StoreError>;

    /// Notes that a campaign started, with the messages it has to send; a campaign started
    /// before (a restart) keeps its first start and total.
    async fn start_campaign(
        &self,
        sale: SaleId,
        kind: CampaignKind,
        total: u64,
        at_ms: u64,
    ) -> Result<(), StoreError>;

    /// Moves a campaign's cursor from `from` to `to` after a page of `messages` was
    /// queued (`last`: it was the last page). `false`, and nothing changed, when the
    /// cursor is no longer at `from` (another runner moved it).
    #[allow(clippy::too_many_arguments)]
    async fn advance_campaign(
        &self,
        sale: SaleId,
        kind: CampaignKind,
        from: Option<UserId>,
        to: Option<UserId>,
        messages: u64,
        last: bool,
        at_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Records messages sent or given up on, in one transaction, and counts them on their
    /// campaigns; a message recorded before is skipped and not counted again. Returns how
    /// many were new.
    async fn record_campaign_deliveries(
        &self,
        deliveries: &[CampaignDelivery],
    ) -> Result<u64, StoreError>;

    /// Stops a sale's campaigns (the sale was cancelled): they count as finished now, are
    /// not due any more, and their queued messages are closed.
    async fn cancel_campaigns(&self, sale: SaleId, at_ms: u64) -> Result<(), StoreError>;

    /// Whether a message must not go out: its delivery is recorded, or its campaign was
    /// cancelled.
    async fn campaign_message_closed(
        &self,
        sale: SaleId,
        kind: CampaignKind,
        user: UserId,
        channel: &str,
    ) -> Result<bool, StoreError> {
        let message = CampaignMessage {
            sale_id: sale,
            kind,
            user_id: user,
            channel: channel.to_owned(),
        };
        let closed = self.campaign_messages_closed(&[message]).await?;
        Ok(closed.first().copied().unwrap_or(false))
    }

    /// [`CampaignStore::campaign_message_closed`] of many messages at once (one answer
    /// each, in order): at 10,000 messages a second, one query per message would be most
    /// of PostgreSQL's work.
    async fn campaign_messages_closed(
        &self,
        messages: &[CampaignMessage],
    ) -> Result<Vec<bool>, StoreError>;

    /// A sale's campaigns (the announcement first).
    async fn campaigns_of_sale(&self, sale: SaleId) -> Result<Vec<Campaign>, StoreError>;
}

const PLAN: Sql = Sql::both(
    "INSERT INTO campaigns (sale_id, kind, product_id, due_at_ms, message) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sale_id, kind) DO UPDATE \
     SET due_at_ms = excluded.due_at_ms, message = excluded.message \
     WHERE campaigns.started_at_ms IS NULL AND campaigns.cancelled_at_ms IS NULL",
);

const DUE: Sql = Sql::each(
    "SELECT sale_id, kind, product_id, due_at_ms, message, total, enqueued, sent, failed, \
     cursor_user_id, started_at_ms, finished_at_ms, cancelled_at_ms, enqueued_all FROM campaigns \
     WHERE NOT enqueued_all AND cancelled_at_ms IS NULL AND due_at_ms <= $1 \
     ORDER BY due_at_ms LIMIT $2",
    "SELECT sale_id, kind, product_id, due_at_ms, message, total, enqueued, sent, failed, \
     cursor_user_id, started_at_ms, finished_at_ms, cancelled_at_ms, \
     enqueued_all::int AS enqueued_all FROM campaigns \
     WHERE NOT enqueued_all AND cancelled_at_ms IS NULL AND due_at_ms <= $1 \
     ORDER BY due_at_ms LIMIT $2",
);

const OF_SALE: Sql = Sql::each(
    "SELECT sale_id, kind, product_id, due_at_ms, message, total, enqueued, sent, failed, \
     cursor_user_id, started_at_ms, finished_at_ms, cancelled_at_ms, enqueued_all \
     FROM campaigns WHERE sale_id = $1 ORDER BY kind",
    "SELECT sale_id, kind, product_id, due_at_ms, message, total, enqueued, sent, failed, \
     cursor_user_id, started_at_ms, finished_at_ms, cancelled_at_ms, \
     enqueued_all::int AS enqueued_all FROM campaigns WHERE sale_id = $1 ORDER BY kind",
);

const START: Sql = Sql::both(
    "UPDATE campaigns SET total = COALESCE(total, $3), \
     started_at_ms = COALESCE(started_at_ms, $4) WHERE sale_id = $1 AND kind = $2",
);

/// The cursor moves only from where the runner read it. The campaign finishes here when
/// its last page's messages were all sent before the cursor moved past them.
const ADVANCE: Sql = Sql::each(
    "UPDATE campaigns SET cursor_user_id = $4, enqueued = enqueued + $5, enqueued_all = $6, \
     finished_at_ms = CASE WHEN $6 AND finished_at_ms IS NULL \
     AND sent + failed >= enqueued + $5 THEN $7 ELSE finished_at_ms END \
     WHERE sale_id = $1 AND kind = $2 AND cursor_user_id IS $3 AND cancelled_at_ms IS NULL",
    "UPDATE campaigns SET cursor_user_id = $4, enqueued = enqueued + $5, enqueued_all = $6, \
     finished_at_ms = CASE WHEN $6 AND finished_at_ms IS NULL \
     AND sent + failed >= enqueued + $5 THEN $7 ELSE finished_at_ms END \
     WHERE sale_id = $1 AND kind = $2 AND cursor_user_id IS NOT DISTINCT FROM $3 \
     AND cancelled_at_ms IS NULL",
);

const COUNT_DELIVERIES: Sql = Sql::both(
    "UPDATE campaigns SET sent = sent + $3, failed = failed + $4, \
     finished_at_ms = CASE WHEN enqueued_all AND finished_at_ms IS NULL \
     AND sent + $3 + failed + $4 >= enqueued THEN $5 ELSE finished_at_ms END \
     WHERE sale_id = $1 AND kind = $2",
);

const CANCELLED: Sql = Sql::both(
    "SELECT 1 AS found FROM campaigns \
     WHERE sale_id = $1 AND kind = $2 AND cancelled_at_ms IS NOT NULL",
);

const DELIVERED: &str = "SELECT 1 AS found FROM campaign_deliveries \
     WHERE sale_id = $1 AND kind = $2 AND user_id = $3 AND channel = $4";

// The recorded ones of a campaign's messages, each looked up through the key. LATERAL
// with LIMIT 1 keeps it a lookup per message whatever the statistics say: a plain join let
// PostgreSQL read every delivery of the campaign into a hash per batch (measured: the
// send rate fell from 5.7K to 0.6K messages a second).
const DELIVERED_OF: &str = "SELECT m.user_id, m.channel \
     FROM UNNEST($3::int8[], $4::text[]) AS m(user_id, channel) \
     CROSS JOIN LATERAL (SELECT 1 FROM campaign_deliveries d \
       WHERE d.sale_id = $1 AND d.kind = $2 AND d.user_id = m.user_id \
       AND d.channel = m.channel LIMIT 1) AS found";

const CANCEL: Sql = Sql::both(
    "UPDATE campaigns SET cancelled_at_ms = COALESCE(cancelled_at_ms, $2), \
     finished_at_ms = COALESCE(finished_at_ms, $2) WHERE sale_id = $1",
);

/// Deliveries recorded by one statement at most (six parameters each: SQLite takes
/// 32,766 per statement).
const DELIVERIES_PER_STATEMENT: usize = 1_000;

#[async_trait]
impl CampaignStore for Database {
    async fn plan_campaigns(&self, plans: &[CampaignPlan]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for plan in plans {
            dialects!(&mut tx, |tx, D| {
                sqlx::query(D::sql(&PLAN))
                    .bind(int(plan.sale_id.0)?)
                    .bind(plan.kind.as_str())
                    .bind(int(plan.product_id.0)?)
                    .bind(int(plan.due_at_ms)?)
                    .bind(plan.message.as_str())
                    .execute(&mut **tx)
                    .await?;
            });
        }
        tx.commit().await
    }

    async fn due_campaigns(&self, now_ms: u64, limit: u32) -> Result<Vec<Campaign>, StoreError> {
        dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&DUE))
                .bind(int(now_ms)?)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(campaign_of_row)
                .collect()
        })
    }

    async fn start_campaign(
        &self,
        sale: SaleId,
        kind: CampaignKind,
        total: u64,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        dialects!(self.batch_pool(), |pool, D| {
            sqlx::query(D::sql(&START))
                .bind(int(sale.0)?)
                .bind(kind.as_str())
                .bind(int(total)?)
                .bind(int(at_ms)?)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn advance_campaign(
        &self,
        sale: SaleId,
        kind: CampaignKind,
        from: Option<UserId>,
        to: Option<UserId>,
        messages: u64,
        last: bool,
        at_ms: u64,
    ) -> Result<bool, StoreError> {
        let from = from.map(|user| int(user.0)).transpose()?;
        let to = to.map(|user| int(user.0)).transpose()?;
        let changed = dialects!(self.batch_pool(), |pool, D| {
            sqlx::query(D::sql(&ADVANCE))
                .bind(int(sale.0)?)
                .bind(kind.as_str())
                .bind(from)
                .bind(to)
                .bind(int(messages)?)
                .bind(last)
                .bind(int(at_ms)?)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed == 1)
    }

    async fn record_campaign_deliveries(
        &self,
        deliveries: &[CampaignDelivery],
    ) -> Result<u64, StoreError> {
        // New deliveries per campaign: (sent, failed).
        let mut counts: HashMap<CampaignKey, (i64, i64)> = HashMap::new();
        let mut tx = self.begin().await?;
        for chunk in deliveries.chunks(DELIVERIES_PER_STATEMENT) {
            let values = chunk
                .iter()
                .map(|delivery| {
                    Ok(DeliveryValues {
                        sale: int(delivery.sale_id.0)?,
                        kind: delivery.kind.as_str(),
                        user: int(delivery.user_id.0)?,
                        channel: delivery.channel.clone(),
                        sent: delivery.sent,
                        at: int(delivery.at_ms)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let rows = match &mut tx {
                Backend::Sqlite(tx) => {
                    let mut insert = insert_deliveries::<sqlx::Sqlite>(&values);
                    new_deliveries(&insert.build().fetch_all(&mut **tx).await?)?
                }
                Backend::Postgres(tx) => {
                    let mut insert = insert_deliveries::<sqlx::Postgres>(&values);
                    new_deliveries(&insert.build().fetch_all(&mut **tx).await?)?
                }
            };
            for (campaign, sent) in rows {
                let count = counts.entry(campaign).or_default();
                match sent {
                    true => count.0 += 1,
                    false => count.1 += 1,
                }
            }
        }
        let at_ms = deliveries.iter().map(|delivery| delivery.at_ms).max();
        let at_ms = int(at_ms.unwrap_or(0))?;
        let mut new = 0;
        // In key order, so two recorders lock the campaigns' rows in the same order.
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_unstable_by_key(|((sale, kind), _)| (*sale, *kind));
        for ((sale, kind), (sent, failed)) in counts {
            new += sent + failed;
            dialects!(&mut tx, |tx, D| {
                sqlx::query(D::sql(&COUNT_DELIVERIES))
                    .bind(int(sale.0)?)
                    .bind(kind.as_str())
                    .bind(sent)
                    .bind(failed)
                    .bind(at_ms)
                    .execute(&mut **tx)
                    .await?;
            });
        }
        tx.commit().await?;
        Ok(new.unsigned_abs())
    }

    async fn cancel_campaigns(&self, sale: SaleId, at_ms: u64) -> Result<(), StoreError> {
        dialects!(self.batch_pool(), |pool, D| {
            sqlx::query(D::sql(&CANCEL))
                .bind(int(sale.0)?)
                .bind(int(at_ms)?)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn campaign_messages_closed(
        &self,
        messages: &[CampaignMessage],
    ) -> Result<Vec<bool>, StoreError> {
        let mut closed = vec![false; messages.len()];
        // The messages of each campaign (a batch is mostly one campaign's).
        let mut campaigns: HashMap<CampaignKey, Vec<usize>> = HashMap::new();
        for (i, message) in messages.iter().enumerate() {
            campaigns
                .entry((message.sale_id, message.kind))
                .or_default()
                .push(i);
        }
        for ((sale, kind), indices) in campaigns {
            let (sale_id, kind_text) = (int(sale.0)?, kind.as_str());
            let cancelled = dialects!(self.pool(), |pool, D| {
                sqlx::query(D::sql(&CANCELLED))
                    .bind(sale_id)
                    .bind(kind_text)
                    .fetch_optional(pool)
                    .await?
                    .is_some()
            });
            if cancelled {
                for i in indices {
                    closed[i] = true;
                }
                continue;
            }
            match self.pool() {
                // In process: a lookup each is cheap.
                Backend::Sqlite(pool) => {
                    let mut conn = pool.acquire().await?;
                    for i in indices {
                        let message = &messages[i];
                        closed[i] = sqlx::query(DELIVERED)
                            .bind(sale_id)
                            .bind(kind_text)
                            .bind(int(message.user_id.0)?)
                            .bind(message.channel.as_str())
                            .fetch_optional(&mut *conn)
                            .await?
                            .is_some();
                    }
                }
                // One round trip for the campaign's messages.
                Backend::Postgres(pool) => {
                    let users = indices
                        .iter()
                        .map(|&i| int(messages[i].user_id.0))
                        .collect::<Result<Vec<i64>, StoreError>>()?;
                    let channels: Vec<&str> = indices
                        .iter()
                        .map(|&i| messages[i].channel.as_str())
                        .collect();
                    let delivered: HashSet<(u64, String)> = sqlx::query(DELIVERED_OF)
                        .bind(sale_id)
                        .bind(kind_text)
                        .bind(&users)
                        .bind(&channels)
                        .fetch_all(pool)
                        .await?
                        .iter()
                        .map(|row| Ok((row.uint("user_id")?, row.text("channel")?)))
                        .collect::<Result<_, StoreError>>()?;
                    for i in indices {
                        let message = &messages[i];
                        closed[i] =
                            delivered.contains(&(message.user_id.0, message.channel.clone()));
                    }
                }
            }
        }
        Ok(closed)
    }

    async fn campaigns_of_sale(&self, sale: SaleId) -> Result<Vec<Campaign>, StoreError> {
        let mut campaigns = dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&OF_SALE))
                .bind(int(sale.0)?)
                .fetch_all(pool)
                .await?
                .iter()
                .map(campaign_of_row)
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        campaigns.sort_by_key(|campaign| campaign.plan.kind);
        Ok(campaigns)
    }
}

/// A campaign's key: its sale and kind.
type CampaignKey = (SaleId, CampaignKind);

/// One delivery's bound values.
struct DeliveryValues {
    sale: i64,
    kind: &'static str,
    user: i64,
    channel: String,
    sent: bool,
    at: i64,
}

/// The multi-row insert of deliveries; it returns the rows that were new.
fn insert_deliveries<DB>(values: &[DeliveryValues]) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> bool: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> String: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut insert = QueryBuilder::<DB>::new(
        "INSERT INTO campaign_deliveries (sale_id, kind, user_id, channel, sent, at_ms) ",
    );
    insert.push_values(values, |mut row, delivery| {
        row.push_bind(delivery.sale)
            .push_bind(delivery.kind.to_owned())
            .push_bind(delivery.user)
            .push_bind(delivery.channel.clone())
            .push_bind(delivery.sent)
            .push_bind(delivery.at);
    });
    insert.push(
        " ON CONFLICT (sale_id, kind, user_id, channel) DO NOTHING \
         RETURNING sale_id, kind, CASE WHEN sent THEN 1 ELSE 0 END AS sent",
    );
    insert
}

/// The campaign of each new delivery, and whether it was sent.
fn new_deliveries(rows: &[impl StoredRow]) -> Result<Vec<(CampaignKey, bool)>, StoreError> {
    rows.iter()
        .map(|row| {
            let sale = SaleId(row.uint("sale_id")?);
            let kind = kind_of(&row.text("kind")?)?;
            Ok(((sale, kind), row.int("sent")? == 1))
        })
        .collect()
}

fn kind_of(text: &str) -> Result<CampaignKind, StoreError> {
    CampaignKind::parse(text).ok_or_else(|| StoreError::Decode(format!("campaign kind {text}")))
}

fn campaign_of_row(row: &impl StoredRow) -> Result<Campaign, StoreError> {
    Ok(Campaign {
        plan: CampaignPlan {
            sale_id: SaleId(row.uint("sale_id")?),
            kind: kind_of(&row.text("kind")?)?,
            product_id: row.product_id("product_id")?,
            due_at_ms: row.uint("due_at_ms")?,
            message: row.text("message")?,
        },
        total: row.opt_uint("total")?,
        enqueued: row.uint("enqueued")?,
        sent: row.uint("sent")?,
        failed: row.uint("failed")?,
        cursor: row.opt_uint("cursor_user_id")?.map(UserId),
        enqueued_all: row.int("enqueued_all")? != 0,
        started_at_ms: row.opt_uint("started_at_ms")?,
        finished_at_ms: row.opt_uint("finished_at_ms")?,
        cancelled_at_ms: row.opt_uint("cancelled_at_ms")?,
    })
}
