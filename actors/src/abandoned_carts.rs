//! Abandoned carts: a cart with items and no change for `abandoned_after` emits
//! `cart_abandoned` once (the workflow turns it into one reminder). A change to the cart
//! re-arms it, a checkout calls it off (`persistence::carts` keeps when each cart last
//! changed).
//!
//! The scan is periodic and reads only the carts that fell due, oldest first, through the
//! index of last changes: a million carts cost it nothing until they are due. Each cart is
//! claimed before its event is written (the claim fails if the cart changed since it was
//! read, or another node claimed it first), so a cart is reminded once per abandonment.
//! If the event cannot be written, the claim is given back and the next pass tries again;
//! a crash between the claim and the write loses that one reminder (never sends two).

use std::time::Duration;

use persistence::{StoreError, UntouchedCart};
use tokio::task::JoinHandle;

use crate::shop::Shop;

/// Carts claimed and written per round of a pass: one store read, one event batch.
const PAGE: u32 = 256;

impl Shop {
    /// One pass: every cart unchanged for `abandoned_after` and not reminded since gets its
    /// `cart_abandoned` event. Returns how many.
    pub async fn remind_abandoned_carts(
        &self,
        abandoned_after: Duration,
    ) -> Result<usize, StoreError> {
        let carts = &self.ctx.stores().carts;
        let mut reminded = 0;
        loop {
            let now = self.ctx.now_ms();
            let before = now.saturating_sub(abandoned_after.as_millis() as u64);
            let due = carts.untouched(before, PAGE).await?;
            let mut events = Vec::new();
            let mut claimed: Vec<UntouchedCart> = Vec::new();
            for &cart in &due {
                // Read before the claim: a change after the read moves the cart's time,
                // and the claim then fails.
                let lines = carts.lines(cart.user_id, now).await?;
                if !carts.claim_untouched(cart).await? || lines.is_empty() {
                    // Changed since, claimed elsewhere, or emptied: nothing to remind.
                    continue;
                }
                events.push(crate::events::cart_abandoned(
                    cart.user_id,
                    &lines,
                    cart.touched_at_ms,
                    now,
                ));
                claimed.push(cart);
            }
            if !events.is_empty()
                && let Err(why) = self.emit(events).await
            {
                for &cart in &claimed {
                    if let Err(error) = carts.release_untouched(cart).await {
                        tracing::warn!(user = %cart.user_id, %error, "an abandoned cart's reminder was lost");
                    }
                }
                return Err(StoreError::Unavailable(format!(
                    "writing cart_abandoned: {why}"
                )));
            }
            reminded += claimed.len();
            if due.len() < PAGE as usize {
                return Ok(reminded);
            }
        }
    }

    /// Runs [`Shop::remind_abandoned_carts`] every `abandoned_after / 10` (between 100 ms
    /// and a minute: a reminder a few minutes late after a day is invisible).
    pub fn start_abandoned_cart_scan(&self, abandoned_after: Duration) -> JoinHandle<()> {
        let shop = self.clone();
        let every =
            (abandoned_after / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match shop.remind_abandoned_carts(abandoned_after).await {
                    Ok(0) => {}
                    Ok(reminded) => tracing::debug!(reminded, "abandoned carts reminded"),
                    Err(error) => tracing::warn!(%error, "abandoned-cart scan failed; retrying"),
                }
            }
        })
    }
}
