//! An order's life after it is placed: payment, cancellation, shipping, delivery, live
//! tracking, and what the customer was told along the way. Every change goes through the
//! order's actor, so two changes of one order never race.

use engine::order::{Order, OrderEvent, OrderStatus};
use engine::{OrderId, UserId};
use persistence::{Delivery, Notification, PaymentRecord, Shipment, TrackingEntry, WriteOp};
use ractor::ActorRef;
use ractor::rpc::CallResult;
use tokio::sync::watch;

use super::Shop;
use crate::error::OrderError;
use crate::protocol::{OrderMsg, OrderSupervisorMsg};
use crate::tracking::{DeliveryStatus, Location, TrackingView};

fn tracking_view(order: &Order, shipment: Option<&Shipment>) -> TrackingView {
    TrackingView {
        order_id: order.id,
        status: order.status,
        tracking_id: shipment.map(|shipment| shipment.tracking_id.clone()),
        estimated_delivery_ms: shipment.map(|shipment| shipment.estimated_delivery_ms),
        location: None,
        sequence: 0,
    }
}

impl Shop {
    /// An order as it is now: from its live actor if it has one, else from the store.
    pub async fn order(&self, id: OrderId) -> Result<Option<Order>, OrderError> {
        let live = self.ctx.live_order(id);
        if let Some(actor) = live
            && let Ok(CallResult::Success(order)) = actor
                .call(OrderMsg::Get, Some(self.ctx.settings().request_timeout))
                .await
        {
            return Ok(Some(order));
        }
        self.ctx
            .stores()
            .orders
            .order(id)
            .await
            .map_err(|error| OrderError::Unavailable(error.to_string()))
    }

    /// Moves an order through its lifecycle (cancel, ship...).
    pub async fn apply_to_order(
        &self,
        id: OrderId,
        event: OrderEvent,
    ) -> Result<Order, OrderError> {
        self.apply_with(id, event, None, Vec::new()).await
    }

    /// A payment provider's verdict: paid (the units become sold) or failed (they go back),
    /// recorded with the change. A replay of a verdict already applied changes nothing and
    /// answers the order as it is.
    pub async fn settle_payment(
        &self,
        id: OrderId,
        transaction_id: String,
        succeeded: bool,
    ) -> Result<Order, OrderError> {
        let event = if succeeded {
            OrderEvent::PaymentSucceeded
        } else {
            OrderEvent::PaymentFailed
        };
        let amount = match self.order(id).await? {
            Some(order) => order.total,
            None => return Err(OrderError::NotFound(id)),
        };
        let payment = PaymentRecord {
            transaction_id,
            succeeded,
            amount,
        };
        match self.apply_with(id, event, Some(payment), Vec::new()).await {
            Err(OrderError::Illegal(illegal)) => {
                let already = if succeeded {
                    illegal.from.is_sold()
                } else {
                    illegal.from == OrderStatus::Cancelled
                };
                if already {
                    return self.order(id).await?.ok_or(OrderError::NotFound(id));
                }
                Err(OrderError::Illegal(illegal))
            }
            other => other,
        }
    }

    async fn apply_with(
        &self,
        id: OrderId,
        event: OrderEvent,
        payment: Option<PaymentRecord>,
        attach: Vec<WriteOp>,
    ) -> Result<Order, OrderError> {
        // Order actors stop when idle; one that stopped between lookup and message is
        // simply looked up again (the message was never handled).
        const ATTEMPTS: usize = 2;
        for _ in 0..ATTEMPTS {
            let Some(actor) = self.order_actor(id).await? else {
                // No actor: either unknown or final, which refuses every event.
                return match self.order(id).await? {
                    None => Err(OrderError::NotFound(id)),
                    Some(order) => match order.status.apply(event) {
                        Err(illegal) => Err(OrderError::Illegal(illegal)),
                        Ok(_) => Err(OrderError::Unavailable(
                            "the order could not be loaded".into(),
                        )),
                    },
                };
            };
            let timeout = Some(self.ctx.settings().request_timeout);
            let payment = payment.clone();
            let attach = attach.clone();
            match actor
                .call(
                    |reply| OrderMsg::Apply {
                        event,
                        payment,
                        attach,
                        reply,
                    },
                    timeout,
                )
                .await
            {
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => {
                    return Err(OrderError::Unavailable("the order did not answer".into()));
                }
                Ok(CallResult::SenderError) | Err(_) => continue,
            }
        }
        Err(OrderError::Unavailable("the order did not answer".into()))
    }

    async fn order_actor(&self, id: OrderId) -> Result<Option<ActorRef<OrderMsg>>, OrderError> {
        let supervisor = self
            .ctx
            .order_supervisor()
            .ok_or_else(|| OrderError::Unavailable("not started".into()))?;
        let timeout = Some(self.ctx.settings().request_timeout);
        match supervisor
            .call(
                |reply| OrderSupervisorMsg::Get {
                    order_id: id,
                    reply,
                },
                timeout,
            )
            .await
        {
            Ok(CallResult::Success(actor)) => Ok(actor),
            Ok(_) | Err(_) => Err(OrderError::Unavailable(
                "the order supervisor did not answer".into(),
            )),
        }
    }

    /// Logistics hands the order to a carrier: PAID -> SHIPPED, with the shipment.
    pub async fn ship(
        &self,
        id: OrderId,
        tracking_id: String,
        estimated_delivery_ms: u64,
    ) -> Result<Order, OrderError> {
        let shipment = Shipment {
            order_id: id,
            tracking_id: tracking_id.clone(),
            estimated_delivery_ms,
            shipped_at_ms: self.ctx.now_ms(),
            delivered: None,
        };
        let order = self
            .apply_with(
                id,
                OrderEvent::Ship,
                None,
                vec![WriteOp::PutShipment(shipment)],
            )
            .await?;
        self.ctx.tracking().update(
            id,
            || tracking_view(&order, None),
            |view| {
                view.status = order.status;
                view.tracking_id = Some(tracking_id);
                view.estimated_delivery_ms = Some(estimated_delivery_ms);
            },
        );
        Ok(order)
    }

    /// The courier reports where the parcel is. Only for orders on their way.
    pub async fn record_location(
        &self,
        id: OrderId,
        lat: f64,
        lng: f64,
        status: DeliveryStatus,
    ) -> Result<TrackingView, OrderError> {
        let order = self.order(id).await?.ok_or(OrderError::NotFound(id))?;
        if order.status != OrderStatus::Shipped {
            return Err(OrderError::NotInTransit(order.status));
        }
        let shipment = self.shipment(id).await?;
        let at_ms = self.ctx.now_ms();
        let view = self.ctx.tracking().update(
            id,
            || tracking_view(&order, shipment.as_ref()),
            |view| {
                view.location = Some(Location {
                    lat,
                    lng,
                    status,
                    at_ms,
                })
            },
        );
        self.emit(vec![crate::events::delivery_location_updated(&view, at_ms)])
            .await
            .map_err(OrderError::Unavailable)?;
        let status = serde_json::to_value(status)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.ctx.mirror_tracking(
            id,
            TrackingEntry {
                lat,
                lng,
                status,
                at_ms,
            },
        );
        Ok(view)
    }

    /// The parcel reached its buyer: SHIPPED -> DELIVERED, with the proof; each seller of
    /// its lines is paid in the same transaction (`payouts.rs`).
    pub async fn complete_delivery(
        &self,
        id: OrderId,
        signature: String,
        photo_url: String,
    ) -> Result<Order, OrderError> {
        let Some(mut shipment) = self.shipment(id).await? else {
            let status = self
                .order(id)
                .await?
                .ok_or(OrderError::NotFound(id))?
                .status;
            return Err(OrderError::NotInTransit(status));
        };
        let at_ms = self.ctx.now_ms();
        shipment.delivered = Some(Delivery {
            at_ms,
            signature,
            photo_url,
        });
        let shipped = self.order(id).await?.ok_or(OrderError::NotFound(id))?;
        let mut attach = vec![WriteOp::PutShipment(shipment.clone())];
        attach.extend(self.payouts_of(&shipped, at_ms)?);
        let order = self
            .apply_with(id, OrderEvent::Deliver, None, attach)
            .await?;
        self.ctx.tracking().update(
            id,
            || tracking_view(&order, Some(&shipment)),
            |view| view.status = order.status,
        );
        self.ctx.tracking().close(id);
        Ok(order)
    }

    /// Live tracking of an order: the order (for the caller's ownership check) and its
    /// latest status and position, then every change.
    pub async fn watch_order(
        &self,
        id: OrderId,
    ) -> Result<(Order, watch::Receiver<TrackingView>), OrderError> {
        let order = self.order(id).await?.ok_or(OrderError::NotFound(id))?;
        let shipment = match self.ctx.tracking().current(id) {
            Some(_) => None,
            None => self.shipment(id).await?,
        };
        let receiver = self
            .ctx
            .tracking()
            .subscribe(|| tracking_view(&order, shipment.as_ref()));
        Ok((order, receiver))
    }

    async fn shipment(&self, id: OrderId) -> Result<Option<Shipment>, OrderError> {
        self.ctx
            .stores()
            .deliveries
            .shipment(id)
            .await
            .map_err(|error| OrderError::Unavailable(error.to_string()))
    }

    /// A customer's messages, newest first.
    pub async fn notifications(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<Notification>, OrderError> {
        self.ctx
            .stores()
            .notifications
            .notifications_for_user(user, limit)
            .await
            .map_err(|error| OrderError::Unavailable(error.to_string()))
    }

    /// What went to providers (the payment requests), newest first: an operator's view.
    pub async fn provider_messages(&self, limit: u32) -> Result<Vec<Notification>, OrderError> {
        self.ctx
            .stores()
            .notifications
            .provider_messages(limit)
            .await
            .map_err(|error| OrderError::Unavailable(error.to_string()))
    }
}
