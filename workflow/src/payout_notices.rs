//! The seller's notice of a payout: the relay hands over `payout_released` (the engine
//! writes one per seller of a delivered order, with the delivery), and this queues one
//! `payout_released` email to the seller. Its id is the order and the seller, so an event
//! relayed twice is sent once. Transactional: never paced.

use std::sync::Arc;

use engine::{Money, OrderId, UserId};
use serde::Deserialize;

use crate::WorkflowError;
use crate::event::EventBody;
use crate::jobs::{Job, JobQueue};
use crate::notices::Notices;

pub const PAYOUT_RELEASED: &str = "payout_released";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Released {
    order_id: OrderId,
    seller_id: UserId,
    gross: Money,
    commission: Money,
    net: Money,
}

/// The relay's sink that tells every seller of each payout.
pub fn payout_notices(jobs: Arc<dyn JobQueue>) -> Notices {
    Notices::new("payout_notices", PAYOUT_RELEASED, notice_of, jobs)
}

fn notice_of(body: &EventBody) -> Result<Job, WorkflowError> {
    Ok(notice(body.data::<Released>()?))
}

fn notice(payout: Released) -> Job {
    Job {
        id: format!("payout:{}:{}", payout.order_id, payout.seller_id.0),
        kind: PAYOUT_RELEASED.to_owned(),
        user_id: payout.seller_id,
        order_id: Some(payout.order_id),
        channels: vec!["email".to_owned()],
        data: serde_json::json!({
            "orderId": payout.order_id, "gross": payout.gross,
            "commission": payout.commission, "net": payout.net,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payout_notice_is_one_email_to_the_seller_named_after_the_order_and_seller() {
        let released: Released = serde_json::from_value(serde_json::json!({
            "orderId": "0190d6f2-0000-7000-8000-000000000001", "sellerId": 2001,
            "gross": 10_000, "commission": 1_000, "net": 9_000, "status": "RELEASED",
            "releasedAt": 5,
        }))
        .expect("a payout");
        let job = notice(released);
        assert_eq!(job.id, "payout:0190d6f2-0000-7000-8000-000000000001:2001");
        assert_eq!(job.user_id, UserId(2001));
        assert_eq!(job.kind, "payout_released");
        assert_eq!(job.channels, ["email"]);
        assert_eq!(job.data["net"], 9_000);
    }
}
