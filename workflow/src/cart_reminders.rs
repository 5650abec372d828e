//! The reminder of an abandoned cart: the relay hands over `cart_abandoned` (the engine's
//! scan emits it once per abandonment), and this queues one `cart_reminder` job by email,
//! sent at the marketing rate ([`crate::pacing`]). Its id is the user and the cart's last
//! change, so an event relayed twice is sent once.

use std::sync::Arc;

use engine::{ProductId, UserId};
use serde::{Deserialize, Serialize};

use crate::WorkflowError;
use crate::event::EventBody;
use crate::jobs::{Job, JobQueue};
use crate::notices::Notices;
use crate::pacing::CART_REMINDER;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AbandonedCart {
    user_id: UserId,
    touched_at: u64,
    items: Vec<CartLine>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct CartLine {
    product_id: ProductId,
    quantity: u32,
}

/// The relay's sink that queues a reminder for every abandoned cart.
pub fn cart_reminders(jobs: Arc<dyn JobQueue>) -> Notices {
    Notices::new("cart_reminders", "cart_abandoned", reminder_of, jobs)
}

fn reminder_of(body: &EventBody) -> Result<Job, WorkflowError> {
    Ok(reminder(body.data::<AbandonedCart>()?))
}

fn reminder(cart: AbandonedCart) -> Job {
    Job {
        id: format!("cart:{}:{}", cart.user_id.0, cart.touched_at),
        kind: CART_REMINDER.to_owned(),
        user_id: cart.user_id,
        order_id: None,
        channels: vec!["email".to_owned()],
        data: serde_json::json!({ "items": cart.items, "lastChangedAt": cart.touched_at }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cart_reminder_is_one_email_named_after_the_cart_and_its_last_change() {
        let cart: AbandonedCart = serde_json::from_value(serde_json::json!({
            "userId": 7, "touchedAt": 1_000,
            "items": [{ "productId": 3, "quantity": 2 }],
        }))
        .expect("an abandoned cart");
        let job = reminder(cart);
        assert_eq!(job.id, "cart:7:1000");
        assert_eq!(job.kind, "cart_reminder");
        assert_eq!(job.channels, ["email"]);
        assert_eq!(job.data["items"][0]["productId"], 3);
        assert_eq!(job.data["lastChangedAt"], 1_000);
    }
}
