//! The log of what the notification jobs sent to providers rather than to people: the
//! payment request every new order sends to the payment provider (with the default sender,
//! what it would have sent). Operators and tests read it newest first; no shopper does.
//!
//! A row holds the messages of one group commit (a *pack*), as the outbox's rows hold
//! events: every Buy Now sends a payment request, and a row each (in `notifications`, with
//! a unique key and an index by user) was the costliest write of an order in PostgreSQL
//! (migration 0028 gives the measurement). The pack is text, one message per line, its
//! fields separated by tabs: `dedup_key \t user \t order \t kind \t channel \t sent_at_ms
//! \t body`, the order empty when there is none. Keys, kinds and channels are our own
//! names and ids (checked when packed), and a body is compact JSON, which escapes every
//! control character.
//!
//! Unlike the shoppers' notifications, the log is not deduplicated: a job delivered twice
//! (RabbitMQ redelivers what was not acknowledged) is two calls to the provider, and the
//! log says so. The dedup key is what a real provider deduplicates on (its idempotency
//! key): `<order>:payment_request:payment_provider`.

use engine::{OrderId, UserId};
use uuid::Uuid;

use crate::database::{Database, Sql, dialects};
use crate::error::StoreError;
use crate::notifications::Notification;
use crate::row::{StoredRow, int, uint};

const FIELD: char = '\t';
const LINE: char = '\n';

/// The newest packs first; `$1` packs at most (each holds one message or more).
const NEWEST: Sql =
    Sql::both("SELECT seq, messages FROM provider_messages ORDER BY seq DESC LIMIT $1");

/// Adds `message` to the pack being written.
pub(crate) fn pack(messages: &mut String, message: &Notification) -> Result<(), StoreError> {
    for (name, field) in [
        ("dedup key", &message.dedup_key),
        ("kind", &message.kind),
        ("channel", &message.channel),
    ] {
        if field.contains([FIELD, LINE]) {
            return Err(StoreError::Conflict(format!(
                "a provider message's {name} holds a tab or a line break: {field:?}"
            )));
        }
    }
    if message.body.contains([FIELD, LINE]) {
        return Err(StoreError::Conflict(format!(
            "a provider message's body is not compact JSON: {:?}",
            message.body
        )));
    }
    if !messages.is_empty() {
        messages.push(LINE);
    }
    let user = int(message.user_id.0)?.to_string();
    let order = message
        .order_id
        .map(|order| order.0.to_string())
        .unwrap_or_default();
    let sent = int(message.sent_at_ms)?.to_string();
    for field in [
        message.dedup_key.as_str(),
        &user,
        &order,
        &message.kind,
        &message.channel,
        &sent,
    ] {
        messages.push_str(field);
        messages.push(FIELD);
    }
    messages.push_str(&message.body);
    Ok(())
}

/// The messages of one stored pack, in the order they were packed.
fn unpack(seq: i64, messages: &str) -> Result<Vec<Notification>, StoreError> {
    let malformed = |line: &str, what: &str| {
        StoreError::Decode(format!("provider message pack {seq}: {what} in {line:?}"))
    };
    messages
        .split(LINE)
        .map(|line| {
            let fields: Vec<&str> = line.splitn(7, FIELD).collect();
            let [dedup_key, user, order, kind, channel, sent, body] = fields[..] else {
                return Err(malformed(line, "a short line"));
            };
            let number = |field: &str| {
                field
                    .parse::<i64>()
                    .map_err(|_| malformed(line, "a bad number"))
                    .and_then(uint)
            };
            let order_id = match order {
                "" => None,
                id => Some(OrderId(
                    Uuid::parse_str(id).map_err(|_| malformed(line, "a bad order id"))?,
                )),
            };
            Ok(Notification {
                dedup_key: dedup_key.to_owned(),
                user_id: UserId(number(user)?),
                order_id,
                kind: kind.to_owned(),
                channel: channel.to_owned(),
                body: body.to_owned(),
                sent_at_ms: number(sent)?,
            })
        })
        .collect()
}

impl Database {
    /// The newest `limit` messages logged, newest first.
    pub(crate) async fn newest_provider_messages(
        &self,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let packs: Vec<(i64, String)> = dialects!(self.pool(), |pool, D| {
            sqlx::query(D::sql(&NEWEST))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|pack| Ok((pack.int("seq")?, pack.text("messages")?)))
                .collect::<Result<_, StoreError>>()?
        });
        let mut newest = Vec::new();
        for (seq, messages) in &packs {
            let mut pack = unpack(*seq, messages)?;
            pack.reverse();
            newest.extend(pack);
            if newest.len() >= limit as usize {
                break;
            }
        }
        newest.truncate(limit as usize);
        Ok(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u128, order: Option<u128>, body: &str) -> Notification {
        Notification {
            dedup_key: format!("{n}:payment_request:payment_provider"),
            user_id: UserId(n as u64),
            order_id: order.map(|id| OrderId(Uuid::from_u128(id))),
            kind: "payment_request".into(),
            channel: "payment_provider".into(),
            body: body.into(),
            sent_at_ms: 1_700_000_000_000 + n as u64,
        }
    }

    #[test]
    fn a_pack_gives_back_its_messages_in_order() {
        let messages = [
            message(1, Some(7), r#"{"note":"tab\tand\nline"}"#),
            message(2, None, "{}"),
        ];
        let mut packed = String::new();
        for message in &messages {
            pack(&mut packed, message).expect("packs");
        }
        assert_eq!(unpack(3, &packed).expect("unpacks"), messages);
    }

    #[test]
    fn a_field_with_a_separator_is_refused_and_a_short_line_is_an_error() {
        let mut tabbed = message(1, None, "{}");
        tabbed.kind = "pay\tment".into();
        assert!(pack(&mut String::new(), &tabbed).is_err());
        let raw_line_break = message(1, None, "{\n}");
        assert!(pack(&mut String::new(), &raw_line_break).is_err());
        assert!(unpack(1, "key\t1\t\tpayment_request").is_err());
        assert!(unpack(1, "key\tnot-a-user\t\tk\tc\t1\t{}").is_err());
    }
}
