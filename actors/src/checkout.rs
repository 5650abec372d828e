//! Checkout: a cart becomes one order. Every line is reserved across its product actors or
//! none is (`hold.rs`); the order and all its items are written in one transaction; the
//! order then waits for payment like a Buy Now order (same expiry, same webhook, same
//! events). The cart is read here and emptied of the ordered lines once the order is
//! durable.

use std::sync::Arc;

use engine::order::{Order, OrderItem, OrderStatus, QUANTITY_MAX};
use engine::{IdempotencyKey, Money, OrderId, ProductId, UserId};
use persistence::{CartChange, CheckoutDetails, CommitOutcome, WriteOp};

use crate::context::Context;
use crate::hold;
use crate::protocol::{PrepareRefused, PrepareStep, Unavailable};
use crate::shop::Shop;

/// Distinct products in one checkout (a cart holds at most this many).
pub const CHECKOUT_LINES_MAX: usize = 100;

/// The idempotency scope of checkout keys (Buy Now keys are scoped per product): the
/// store keeps a unique index on them.
pub use persistence::CHECKOUT_SCOPE;

/// How an order may be paid; each goes through the payment provider's webhook.
pub const PAYMENT_METHODS: [&str; 4] = ["UPI", "CARD", "NETBANKING", "WALLET"];
pub const ADDRESS_ID_LENGTH_MAX: usize = 64;

/// A customer's "place my cart as an order".
#[derive(Clone, Debug)]
pub struct CartCheckout {
    pub user_id: UserId,
    /// The client's key; the order carries [`IdempotencyKey::for_checkout`] of it.
    pub idempotency_key: IdempotencyKey,
    pub address_id: String,
    pub payment_method: String,
}

#[derive(Clone, Debug)]
struct CheckoutRequest {
    user_id: UserId,
    lines: Vec<CheckoutLine>,
    idempotency_key: IdempotencyKey,
    address_id: String,
    payment_method: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckoutLine {
    pub product_id: ProductId,
    pub quantity: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckoutReply {
    /// The order exists and is durable (or existed already for this key).
    Placed { order: Order, duplicate: bool },
    /// Nothing was reserved: these lines could not be, for these reasons.
    Refused(Vec<LineRefusal>),
    /// Another checkout of the same user is running right now; retry with the same key.
    InProgress,
    /// On a cluster, no line of the cart is served here: the node serving this product
    /// (the first line's) places the order, so its reservation clock runs there.
    Elsewhere(ProductId),
    /// No decision could be made durable; retrying with the same key is safe.
    Unavailable(Unavailable),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRefusal {
    pub product_id: ProductId,
    pub quantity: u32,
    pub reason: PrepareRefused,
}

/// A checkout that cannot be attempted as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error("must be 1 to {ADDRESS_ID_LENGTH_MAX} printable characters")]
    InvalidAddress,
    #[error("must be one of UPI, CARD, NETBANKING, WALLET")]
    InvalidPaymentMethod,
    #[error("the cart is empty: add items with POST /api/v1/cart/items first")]
    Empty,
    #[error("a checkout holds at most {CHECKOUT_LINES_MAX} lines")]
    TooManyLines,
    #[error("product {0} appears on two lines")]
    RepeatedProduct(ProductId),
    #[error("line of product {0} has no units")]
    ZeroQuantity(ProductId),
    #[error("line of product {0} asks for more than {QUANTITY_MAX} units")]
    QuantityTooLarge(ProductId),
    #[error("the order total does not fit")]
    TotalTooLarge,
}

impl Shop {
    /// Turns the customer's cart into one order, all lines reserved or none, and empties
    /// the cart of them. A key used before answers with its order, whatever the cart holds
    /// now (it was emptied by then).
    pub async fn checkout_cart(
        &self,
        checkout: CartCheckout,
    ) -> Result<CheckoutReply, CheckoutError> {
        let address_id = checkout.address_id.trim();
        if address_id.is_empty()
            || address_id.len() > ADDRESS_ID_LENGTH_MAX
            || address_id.chars().any(char::is_control)
        {
            return Err(CheckoutError::InvalidAddress);
        }
        if !PAYMENT_METHODS.contains(&checkout.payment_method.as_str()) {
            return Err(CheckoutError::InvalidPaymentMethod);
        }
        let now = self.ctx.now_ms();
        let cart = match self.ctx.stores().carts.lines(checkout.user_id, now).await {
            Ok(cart) => cart,
            Err(error) => {
                return Ok(CheckoutReply::Unavailable(Unavailable::NotWritten(
                    error.to_string().into(),
                )));
            }
        };
        let mut lines: Vec<CheckoutLine> = cart
            .iter()
            .map(|item| CheckoutLine {
                product_id: item.product_id,
                quantity: item.quantity,
            })
            .collect();
        if self.ctx.node_channel().is_some() {
            // An order's first line says which node runs its reservation clock and its
            // later changes (`shards.rs`): one of this node's, other nodes hold the rest.
            if let Some(first) = lines.first()
                && !lines.iter().any(|line| self.ctx.admits(line.product_id))
            {
                return Ok(CheckoutReply::Elsewhere(first.product_id));
            }
            lines.sort_by_key(|line| !self.ctx.admits(line.product_id));
        }
        let request = CheckoutRequest {
            user_id: checkout.user_id,
            lines,
            idempotency_key: checkout.idempotency_key,
            address_id: address_id.to_owned(),
            payment_method: checkout.payment_method,
        };
        let ctx = Arc::clone(&self.ctx);
        // On a task of its own: a client that hangs up must not stop a checkout between
        // holding its lines and settling them, nor between placing the order and emptying
        // the cart.
        let running = tokio::spawn(async move {
            let user_id = request.user_id;
            let reply = place(&ctx, request).await?;
            if let CheckoutReply::Placed {
                order,
                duplicate: false,
            } = &reply
            {
                let ordered: Vec<ProductId> =
                    order.items.iter().map(|item| item.product_id).collect();
                // Emptying the cart also calls off its abandoned-cart reminder. The order
                // stands either way; a cart that could not be emptied only shows lines
                // already ordered, and the key answers a retry with this order.
                let emptied = ctx
                    .stores()
                    .carts
                    .remove(user_id, &ordered, CartChange::CheckedOut);
                if let Err(error) = emptied.await {
                    tracing::warn!(order_id = %order.id, %error, "cart not emptied after checkout");
                }
            }
            Ok(reply)
        });
        running.await.unwrap_or_else(|error| {
            tracing::error!(%error, "checkout task failed");
            Ok(CheckoutReply::Unavailable(Unavailable::NotWritten(
                "the checkout failed".into(),
            )))
        })
    }
}

fn check(lines: &[CheckoutLine]) -> Result<(), CheckoutError> {
    if lines.is_empty() {
        return Err(CheckoutError::Empty);
    }
    if lines.len() > CHECKOUT_LINES_MAX {
        return Err(CheckoutError::TooManyLines);
    }
    let mut seen = std::collections::HashSet::with_capacity(lines.len());
    for line in lines {
        if line.quantity == 0 {
            return Err(CheckoutError::ZeroQuantity(line.product_id));
        }
        if line.quantity > QUANTITY_MAX {
            return Err(CheckoutError::QuantityTooLarge(line.product_id));
        }
        if !seen.insert(line.product_id) {
            return Err(CheckoutError::RepeatedProduct(line.product_id));
        }
    }
    Ok(())
}

async fn place(ctx: &Context, request: CheckoutRequest) -> Result<CheckoutReply, CheckoutError> {
    // One checkout per user at a time: with it, looking the key up and then placing the
    // order cannot race with a second press of the same button.
    let Some(_running) = RunningCheckout::enter(ctx, request.user_id) else {
        return Ok(CheckoutReply::InProgress);
    };
    let key = IdempotencyKey::for_checkout(&request.idempotency_key);
    match ctx
        .stores()
        .orders
        .order_for_key(request.user_id, CHECKOUT_SCOPE, &key)
        .await
    {
        Ok(Some(order_id)) => return Ok(earlier_order(ctx, order_id).await),
        Ok(None) => {}
        Err(error) => {
            return Ok(CheckoutReply::Unavailable(Unavailable::NotWritten(
                error.to_string().into(),
            )));
        }
    }
    check(&request.lines)?;

    let now = ctx.now_ms();
    let expires_at_ms = now + ctx.settings().reservation_ttl.as_millis() as u64;
    let order_id = ctx.new_order_id(now);
    let steps = request
        .lines
        .iter()
        .map(|line| {
            let step = PrepareStep::Reserve {
                user_id: request.user_id,
                quantity: line.quantity,
                idempotency_key: key.clone(),
                now_ms: now,
                expires_at_ms,
            };
            (line.product_id, step)
        })
        .collect();
    let held = match hold::prepare(ctx, order_id, steps).await {
        Ok(held) => held,
        Err(failures) => {
            let refusals = failures
                .into_iter()
                .map(|(product_id, reason)| LineRefusal {
                    product_id,
                    quantity: quantity_of(&request.lines, product_id),
                    reason,
                })
                .collect();
            return Ok(CheckoutReply::Refused(refusals));
        }
    };

    let items: Vec<OrderItem> = held
        .lines
        .iter()
        .map(|(product_id, line)| OrderItem {
            product_id: *product_id,
            sale_id: line.sale_id,
            quantity: line.quantity,
            unit_price: line.unit_price,
        })
        .collect();
    // Dropping `held` on this error gives every line back.
    let total = total_of(&items).ok_or(CheckoutError::TotalTooLarge)?;
    let order = Order {
        id: order_id,
        user_id: request.user_id,
        status: OrderStatus::PendingPayment,
        items,
        total,
        idempotency_key: key,
        created_at_ms: now,
        expires_at_ms,
        updated_at_ms: now,
    };
    let ops = vec![
        WriteOp::Emit(crate::events::order_placed(&order)),
        WriteOp::PlaceOrder {
            order: order.clone(),
            idempotency_scope: CHECKOUT_SCOPE.into(),
        },
        WriteOp::PutCheckout(CheckoutDetails {
            order_id,
            address_id: request.address_id,
            payment_method: request.payment_method,
        }),
    ];
    Ok(match held.commit(ctx, ops).await {
        CommitOutcome::Committed => {
            ctx.track_new_orders(vec![(order.id, order.expires_at_ms)]);
            ctx.count_checkout_placed();
            CheckoutReply::Placed {
                order,
                duplicate: false,
            }
        }
        CommitOutcome::NotWritten(reason) => {
            CheckoutReply::Unavailable(Unavailable::NotWritten(reason))
        }
        CommitOutcome::Unknown(reason) => CheckoutReply::Unavailable(Unavailable::Unknown(reason)),
    })
}

/// The answer to a retry: the order the key made, as it is now.
async fn earlier_order(ctx: &Context, order_id: OrderId) -> CheckoutReply {
    match ctx.stores().orders.order(order_id).await {
        Ok(Some(order)) => CheckoutReply::Placed {
            order,
            duplicate: true,
        },
        Ok(None) => CheckoutReply::Unavailable(Unavailable::NotWritten(
            "the key's order could not be read".into(),
        )),
        Err(error) => CheckoutReply::Unavailable(Unavailable::NotWritten(error.to_string().into())),
    }
}

fn quantity_of(lines: &[CheckoutLine], product_id: ProductId) -> u32 {
    lines
        .iter()
        .find(|line| line.product_id == product_id)
        .map_or(0, |line| line.quantity)
}

fn total_of(items: &[OrderItem]) -> Option<Money> {
    items.iter().try_fold(Money(0), |sum, item| {
        let line = item.unit_price.times(item.quantity)?;
        sum.0.checked_add(line.0).map(Money)
    })
}

/// Marks a user's checkout as running, until dropped.
struct RunningCheckout<'a> {
    ctx: &'a Context,
    user_id: UserId,
}

impl<'a> RunningCheckout<'a> {
    fn enter(ctx: &'a Context, user_id: UserId) -> Option<Self> {
        ctx.begin_checkout(user_id).then_some(Self { ctx, user_id })
    }
}

impl Drop for RunningCheckout<'_> {
    fn drop(&mut self) {
        self.ctx.end_checkout(self.user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product: u64, quantity: u32) -> CheckoutLine {
        CheckoutLine {
            product_id: ProductId(product),
            quantity,
        }
    }

    #[test]
    fn malformed_carts_are_refused_before_anything_is_held() {
        assert_eq!(check(&[]), Err(CheckoutError::Empty));
        assert_eq!(
            check(&[line(1, 1), line(1, 2)]),
            Err(CheckoutError::RepeatedProduct(ProductId(1)))
        );
        assert_eq!(
            check(&[line(1, 0)]),
            Err(CheckoutError::ZeroQuantity(ProductId(1)))
        );
        assert_eq!(
            check(&[line(1, QUANTITY_MAX + 1)]),
            Err(CheckoutError::QuantityTooLarge(ProductId(1)))
        );
        let many: Vec<_> = (0..=CHECKOUT_LINES_MAX as u64)
            .map(|p| line(p, 1))
            .collect();
        assert_eq!(check(&many), Err(CheckoutError::TooManyLines));
        assert_eq!(check(&[line(1, 1), line(2, 3)]), Ok(()));
    }

    #[test]
    fn totals_add_up_or_refuse_to_overflow() {
        let item = |price: u64, quantity: u32| OrderItem {
            product_id: ProductId(1),
            sale_id: None,
            quantity,
            unit_price: Money(price),
        };
        assert_eq!(total_of(&[item(250, 2), item(100, 1)]), Some(Money(600)));
        assert_eq!(
            total_of(&[item(u64::MAX / 2, 1), item(u64::MAX / 2, 1), item(2, 1)]),
            None
        );
    }
}
