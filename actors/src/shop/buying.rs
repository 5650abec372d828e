//! Buy Now: reserve, make durable, answer. (A cart's checkout is `checkout.rs`.)

use engine::order::OrderStatus;
use engine::{IdempotencyKey, ProductId, UserId};
use tokio::sync::oneshot;

use super::Shop;
use crate::error::BuyNowError;
use crate::protocol::{BuyNow, BuyNowReply, HandleError, ProductMsg, Unavailable, Waiter};

/// A Buy Now as the shop receives it: already authenticated and validated by the gateway.
#[derive(Clone, Debug)]
pub struct BuyNowRequest {
    pub product_id: ProductId,
    pub user_id: UserId,
    pub quantity: u32,
    pub idempotency_key: IdempotencyKey,
}

impl Shop {
    /// Buy Now: reserve, make durable, answer. Business outcomes (placed, sold out, limit)
    /// are `Ok`; `Err` only for an unknown product or an overloaded one.
    #[tracing::instrument(
        name = "shop.buy_now",
        level = "debug",
        skip_all,
        fields(product = request.product_id.0, quantity = request.quantity)
    )]
    pub async fn buy_now(&self, request: BuyNowRequest) -> Result<BuyNowReply, BuyNowError> {
        // A second attempt only happens when the first reached an actor that was stopping
        // (passivated or restarted): then nothing of the request was written.
        const ATTEMPTS: usize = 2;
        for _ in 0..ATTEMPTS {
            let handle = match self.ctx.product_handle(request.product_id).await {
                Ok(handle) => handle,
                Err(HandleError::UnknownProduct(id)) => {
                    return Err(BuyNowError::UnknownProduct(id));
                }
                Err(HandleError::Unavailable(reason)) => {
                    return Ok(BuyNowReply::Unavailable(Unavailable::NotWritten(
                        reason.into(),
                    )));
                }
                Err(elsewhere @ HandleError::Elsewhere(_)) => {
                    return Ok(BuyNowReply::Unavailable(Unavailable::NotWritten(
                        elsewhere.to_string().into(),
                    )));
                }
            };
            handle.touch(self.ctx.now_ms());
            let permit = handle
                .in_flight
                .admit(self.ctx.settings().in_flight_per_product_max)
                .ok_or(BuyNowError::Overloaded(request.product_id))?;
            let (reply, answer) = oneshot::channel();
            let message = ProductMsg::BuyNow(Box::new(BuyNow {
                user_id: request.user_id,
                quantity: request.quantity,
                idempotency_key: request.idempotency_key.clone(),
                waiter: Waiter::new(reply, permit),
            }));
            if handle.actor.cast(message).is_err() {
                self.ctx
                    .forget_product(request.product_id, handle.actor.get_id());
                continue;
            }
            match tokio::time::timeout(self.ctx.settings().request_timeout, answer).await {
                Ok(Ok(reply)) => return Ok(self.with_current_status(reply).await),
                // The actor stopped before making the decision durable: nothing written.
                Ok(Err(_)) => {
                    self.ctx
                        .forget_product(request.product_id, handle.actor.get_id());
                    continue;
                }
                Err(_) => return Ok(BuyNowReply::Unavailable(Unavailable::TimedOut)),
            }
        }
        Ok(BuyNowReply::Unavailable(Unavailable::Recovering))
    }

    /// A retry of a settled order reports the order's real status, which the stock state
    /// machine only knows roughly (released, not why).
    async fn with_current_status(&self, reply: BuyNowReply) -> BuyNowReply {
        match reply {
            BuyNowReply::Placed(mut placement)
                if placement.duplicate && placement.status != OrderStatus::PendingPayment =>
            {
                if let Ok(Some(order)) = self.order(placement.order_id).await {
                    placement.status = order.status;
                }
                BuyNowReply::Placed(placement)
            }
            other => other,
        }
    }
}
