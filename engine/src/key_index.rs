//! Which order each (user, idempotency key) pair made, among one product's lines.
//!
//! The key itself is kept once, in its line; the index holds a 64-bit fingerprint of the
//! pair, so a pending order costs 24 bytes here instead of a second copy of its key. Two
//! different pairs with the same fingerprint (odds of 2^-64 per pair, but a client chooses
//! its keys) are told apart by comparing with the line, and the later one is indexed by
//! the pair itself, in `colliding`, which is empty in practice.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::ids::{IdempotencyKey, OrderId, UserId};
use crate::split_map::SplitMap;
use crate::stock::Line;

#[derive(Clone, Debug, Default)]
pub(crate) struct KeyIndex {
    /// Split in parts like the lines, for the same reason: it grows with them.
    by_fingerprint: SplitMap<u64, OrderId>,
    colliding: HashMap<(UserId, IdempotencyKey), OrderId>,
}

/// The same for the same pair in every process (SipHash with fixed keys), so a replayed
/// simulation indexes the same way.
fn fingerprint(user: UserId, key: &IdempotencyKey) -> u64 {
    let mut hasher = DefaultHasher::new();
    user.hash(&mut hasher);
    key.as_str().hash(&mut hasher);
    hasher.finish()
}

fn made_by(line: Option<&Line>, user: UserId, key: &IdempotencyKey) -> bool {
    line.is_some_and(|line| line.user_id == user && line.idempotency_key == *key)
}

impl KeyIndex {
    /// The order `user` made with `key`, if its line is among `lines`.
    pub fn get(
        &self,
        user: UserId,
        key: &IdempotencyKey,
        lines: &SplitMap<OrderId, Line>,
    ) -> Option<OrderId> {
        self.get_at(fingerprint(user, key), user, key, lines)
    }

    fn get_at(
        &self,
        fingerprint: u64,
        user: UserId,
        key: &IdempotencyKey,
        lines: &SplitMap<OrderId, Line>,
    ) -> Option<OrderId> {
        if let Some(order) = self.by_fingerprint.get(&fingerprint)
            && made_by(lines.get(order), user, key)
        {
            return Some(*order);
        }
        if self.colliding.is_empty() {
            return None;
        }
        self.colliding.get(&(user, key.clone())).copied()
    }

    /// Indexes `order` as the one `user` made with `key`. False if that pair already has
    /// an order (the caller looked it up first: a second one is a bug or corrupt data).
    pub fn insert(
        &mut self,
        user: UserId,
        key: &IdempotencyKey,
        order: OrderId,
        lines: &SplitMap<OrderId, Line>,
    ) -> bool {
        self.insert_at(fingerprint(user, key), user, key, order, lines)
    }

    fn insert_at(
        &mut self,
        fingerprint: u64,
        user: UserId,
        key: &IdempotencyKey,
        order: OrderId,
        lines: &SplitMap<OrderId, Line>,
    ) -> bool {
        if self.get_at(fingerprint, user, key, lines).is_some() {
            return false;
        }
        match self.by_fingerprint.get(&fingerprint) {
            None => {
                self.by_fingerprint.insert(fingerprint, order);
            }
            Some(_) => {
                self.colliding.insert((user, key.clone()), order);
            }
        }
        true
    }

    /// Forgets the pair of `order`.
    pub fn remove(&mut self, user: UserId, key: &IdempotencyKey, order: OrderId) {
        self.remove_at(fingerprint(user, key), user, key, order);
    }

    fn remove_at(&mut self, fingerprint: u64, user: UserId, key: &IdempotencyKey, order: OrderId) {
        if self.by_fingerprint.get(&fingerprint) == Some(&order) {
            self.by_fingerprint.remove(&fingerprint);
        } else {
            let removed = self.colliding.remove(&(user, key.clone()));
            assert_eq!(removed, Some(order), "the pair of a known line is indexed");
        }
    }

    pub fn len(&self) -> usize {
        self.by_fingerprint.len() + self.colliding.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;
    use crate::stock::LineState;

    fn line(order: u128, user: u64, key: &str) -> Line {
        Line {
            order_id: OrderId(uuid::Uuid::from_u128(order)),
            user_id: UserId(user),
            idempotency_key: IdempotencyKey::parse(key).expect("key"),
            quantity: 1,
            unit_price: Money(100),
            sale_id: None,
            created_at_ms: 0,
            expires_at_ms: 1,
            state: LineState::Reserved,
        }
    }

    /// Two pairs forced onto one fingerprint stay apart, and each leaves cleanly.
    #[test]
    fn pairs_sharing_a_fingerprint_are_told_apart() {
        let (a, b) = (line(1, 7, "alpha"), line(2, 7, "beta"));
        let lines: SplitMap<OrderId, Line> = [(a.order_id, a.clone()), (b.order_id, b.clone())]
            .into_iter()
            .collect();
        let mut index = KeyIndex::default();
        const SHARED: u64 = 42;
        assert!(index.insert_at(SHARED, a.user_id, &a.idempotency_key, a.order_id, &lines));
        assert!(index.insert_at(SHARED, b.user_id, &b.idempotency_key, b.order_id, &lines));
        assert!(!index.insert_at(SHARED, b.user_id, &b.idempotency_key, b.order_id, &lines));
        assert_eq!(index.len(), 2);
        let found = |index: &KeyIndex, line: &Line| {
            index.get_at(SHARED, line.user_id, &line.idempotency_key, &lines)
        };
        assert_eq!(found(&index, &a), Some(a.order_id));
        assert_eq!(found(&index, &b), Some(b.order_id));
        // The first leaves: the second is still found, through the colliding pairs.
        index.remove_at(SHARED, a.user_id, &a.idempotency_key, a.order_id);
        assert_eq!(found(&index, &b), Some(b.order_id));
        index.remove_at(SHARED, b.user_id, &b.idempotency_key, b.order_id);
        assert_eq!(index.len(), 0);
    }
}
