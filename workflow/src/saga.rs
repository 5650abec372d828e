//! The order workflow, step by step. Each order event moves the saga on:
//!
//! ```text
//! order_placed       -> payment initiated (a payment request to the provider)
//! payment webhook    -> payment_completed + order_confirmed (the engine)
//! order_confirmed    -> logistics assigns a delivery partner; confirmation email and SMS
//! payment_completed  -> payment success email
//! order_shipped      -> shipping label email
//! order_delivered    -> review request, 24 h later
//! payment_failed / order_expired / order_cancelled
//!                    -> the engine already put the stock back (the compensation);
//!                       the customer is told why
//! ```
//!
//! Steps are idempotent: a job's id is derived from the order and the step, and the
//! partner assignment keeps the first answer, so an event delivered twice does the work once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use persistence::Deliveries;
use serde_json::json;

use crate::WorkflowError;
use crate::event::{EventBody, OrderData, order_verb};
use crate::jobs::{Job, JobQueue, PAYMENT_PROVIDER, now_ms};
use crate::rabbit::Handler;

#[derive(Clone, Debug)]
pub struct SagaSettings {
    /// After delivery, when to ask for a review.
    pub review_delay: Duration,
    /// Delivery partners logistics chooses from (by order id, so a retry picks the same).
    pub delivery_partners: Vec<String>,
}

pub struct OrderSaga {
    deliveries: Arc<dyn Deliveries>,
    jobs: Arc<dyn JobQueue>,
    settings: SagaSettings,
}

impl OrderSaga {
    pub fn new(
        deliveries: Arc<dyn Deliveries>,
        jobs: Arc<dyn JobQueue>,
        settings: SagaSettings,
    ) -> Self {
        Self {
            deliveries,
            jobs,
            settings,
        }
    }

    /// Takes one event; events outside the order workflow are ignored.
    pub async fn handle(&self, body: &EventBody) -> Result<(), WorkflowError> {
        let Some(verb) = order_verb(&body.event_type) else {
            return Ok(());
        };
        let order = body.order()?;
        let amount = json!({ "orderId": order.order_id, "total": order.total });
        match verb {
            "created" => {
                self.send(
                    &order,
                    "payment_request",
                    &[PAYMENT_PROVIDER],
                    amount,
                    Duration::ZERO,
                )
                .await
            }
            "paid" => {
                self.send(
                    &order,
                    "payment_success",
                    &["email"],
                    amount,
                    Duration::ZERO,
                )
                .await
            }
            "confirmed" => {
                let partner = self.assign_delivery_partner(&order).await?;
                let data = json!({
                    "orderId": order.order_id, "total": order.total, "deliveryPartner": partner,
                    "items": order.items.iter().map(|item| json!({
                        "productId": item.product_id, "quantity": item.quantity,
                    })).collect::<Vec<_>>(),
                });
                self.send(
                    &order,
                    "order_confirmation",
                    &["email", "sms"],
                    data,
                    Duration::ZERO,
                )
                .await
            }
            "cancelled" | "expired" => {
                let data = json!({ "orderId": order.order_id, "reason": body.event_type });
                self.send(&order, "order_cancelled", &["email"], data, Duration::ZERO)
                    .await
            }
            "shipped" => {
                self.send(&order, "shipping_label", &["email"], amount, Duration::ZERO)
                    .await
            }
            "delivered" => {
                let data = json!({
                    "orderId": order.order_id,
                    "products": order.items.iter().map(|item| item.product_id).collect::<Vec<_>>(),
                });
                self.send(
                    &order,
                    "review_request",
                    &["email"],
                    data,
                    self.settings.review_delay,
                )
                .await
            }
            _ => Ok(()),
        }
    }

    async fn assign_delivery_partner(&self, order: &OrderData) -> Result<String, WorkflowError> {
        let partners = &self.settings.delivery_partners;
        if partners.is_empty() {
            return Err(WorkflowError::Failed(
                "no delivery partners configured".into(),
            ));
        }
        let pick = (order.order_id.0.as_u128() % partners.len() as u128) as usize;
        Ok(self
            .deliveries
            .assign_partner(order.order_id, &partners[pick], now_ms())
            .await?)
    }

    async fn send(
        &self,
        order: &OrderData,
        kind: &str,
        channels: &[&str],
        data: serde_json::Value,
        delay: Duration,
    ) -> Result<(), WorkflowError> {
        let job = Job {
            id: format!("{}:{kind}", order.order_id),
            kind: kind.to_owned(),
            user_id: order.user_id,
            order_id: Some(order.order_id),
            channels: channels
                .iter()
                .map(|channel| (*channel).to_owned())
                .collect(),
            data,
        };
        self.jobs.enqueue(job, delay).await
    }
}

/// The saga as the worker of the `workflow.orders` queue.
#[async_trait]
impl Handler for OrderSaga {
    async fn handle(&self, payload: &[u8], _redelivered: bool) -> Result<(), WorkflowError> {
        OrderSaga::handle(self, &EventBody::parse(payload)?).await
    }
}
