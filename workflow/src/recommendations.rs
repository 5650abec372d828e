//! Recommendations (issue 17, part 4), the counting half: which products are bought
//! together (the lines of one order) and viewed together (one user's views less than a
//! session gap apart), as bounded, decaying co-occurrence scores per product.
//!
//! Bounded: a product keeps `neighbours_max` neighbours (Space-Saving: a newcomer takes the
//! weakest one's place and score, so a frequent pair is never lost), and at most
//! `sessions_max` users' recent views are remembered. Decaying: a score halves every `half_life_ms`, so last
//! season's pairs give way to this week's. Scores are kept as of their last update and
//! decayed when read, so an update touches only the pair it counts.
//!
//! [`crate::analytics`] feeds it from the `analytics` consumer group (`order_placed`,
//! `product_viewed`) and answers `GET /api/v1/products/{id}/recommendations`. The lists
//! that changed are saved to the store every few seconds and at a graceful stop
//! ([`CoOccurrence::take_changed`], `persistence::RecommendationStore`), and a restart
//! starts from them ([`CoOccurrence::restore`]); sessions are not saved (they last 30
//! minutes).

use std::collections::{HashMap, HashSet, VecDeque};

use engine::{ProductId, UserId};
use persistence::{Neighbour, NeighbourList};

/// A purchase together says more than a view together.
pub const BOUGHT_WEIGHT: f64 = 3.0;
pub const VIEWED_WEIGHT: f64 = 1.0;

#[derive(Clone, Debug)]
pub struct RecommendationSettings {
    /// Neighbours kept per product.
    pub neighbours_max: usize,
    /// A score halves in this time.
    pub half_life_ms: u64,
    /// Two views of one user at most this far apart are one session.
    pub session_gap_ms: u64,
    /// Products of a session paired with the next view (the most recent ones).
    pub session_products_max: usize,
    /// Users whose recent views are remembered.
    pub sessions_max: usize,
}

impl Default for RecommendationSettings {
    fn default() -> Self {
        Self {
            neighbours_max: 32,
            half_life_ms: 7 * 24 * 3_600_000,
            session_gap_ms: 30 * 60_000,
            session_products_max: 16,
            sessions_max: 100_000,
        }
    }
}

/// A score as of `at_ms`.
#[derive(Clone, Copy, Debug)]
struct Score {
    value: f64,
    at_ms: u64,
}

impl Score {
    fn at(self, now_ms: u64, half_life_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        self.value * (-elapsed / half_life_ms.max(1) as f64).exp2()
    }
}

struct Session {
    last_at_ms: u64,
    /// Most recent last, without repeats.
    products: VecDeque<ProductId>,
}

pub struct CoOccurrence {
    settings: RecommendationSettings,
    neighbours: HashMap<ProductId, Vec<(ProductId, Score)>>,
    sessions: HashMap<UserId, Session>,
    /// Products whose lists changed since they were last taken to be saved.
    changed: HashSet<ProductId>,
}

impl CoOccurrence {
    pub fn new(settings: RecommendationSettings) -> Self {
        Self {
            settings,
            neighbours: HashMap::new(),
            sessions: HashMap::new(),
            changed: HashSet::new(),
        }
    }

    /// Starts from saved lists (a restart); lists counted since are kept and summed in.
    pub fn restore(&mut self, lists: Vec<NeighbourList>) {
        for list in lists {
            for neighbour in list.neighbours {
                if neighbour.product_id == list.product_id || !neighbour.score.is_finite() {
                    continue;
                }
                let score = Score {
                    value: neighbour.score.max(0.0),
                    at_ms: neighbour.at_ms,
                };
                self.merge(list.product_id, neighbour.product_id, score);
            }
        }
    }

    /// The lists that changed since the last call, to be saved; they count as saved
    /// unless handed back with [`CoOccurrence::unsaved`].
    pub fn take_changed(&mut self) -> Vec<NeighbourList> {
        let changed: Vec<ProductId> = self.changed.drain().collect();
        changed
            .into_iter()
            .filter_map(|product_id| {
                let neighbours = self.neighbours.get(&product_id)?;
                Some(NeighbourList {
                    product_id,
                    neighbours: neighbours
                        .iter()
                        .map(|&(other, score)| Neighbour {
                            product_id: other,
                            score: score.value,
                            at_ms: score.at_ms,
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// Lists taken by [`CoOccurrence::take_changed`] that could not be saved: saved with
    /// the next ones.
    pub fn unsaved(&mut self, lists: &[NeighbourList]) {
        self.changed
            .extend(lists.iter().map(|list| list.product_id));
    }

    /// The products of one order: every pair of different products counts once.
    pub fn bought_together(&mut self, products: &[ProductId], at_ms: u64) {
        let mut distinct = products.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        for (i, &a) in distinct.iter().enumerate() {
            for &b in &distinct[i + 1..] {
                self.count_pair(a, b, BOUGHT_WEIGHT, at_ms);
            }
        }
    }

    /// A user viewed a product: it pairs with the products of their session, which it
    /// joins (or starts, after a gap).
    pub fn viewed(&mut self, user: UserId, product: ProductId, at_ms: u64) {
        let gap = self.settings.session_gap_ms;
        if !self.sessions.contains_key(&user) && self.sessions.len() >= self.settings.sessions_max {
            self.forget_sessions(at_ms);
        }
        let session = self.sessions.entry(user).or_insert(Session {
            last_at_ms: at_ms,
            products: VecDeque::new(),
        });
        if at_ms.saturating_sub(session.last_at_ms) > gap {
            session.products.clear();
        }
        session.last_at_ms = session.last_at_ms.max(at_ms);
        let earlier: Vec<ProductId> = session
            .products
            .iter()
            .copied()
            .filter(|&seen| seen != product)
            .collect();
        session.products.retain(|&seen| seen != product);
        session.products.push_back(product);
        if session.products.len() > self.settings.session_products_max {
            session.products.pop_front();
        }
        for other in earlier {
            self.count_pair(product, other, VIEWED_WEIGHT, at_ms);
        }
    }

    /// The products most often bought or viewed with `product`, best first, as of `now_ms`.
    pub fn recommend(
        &self,
        product: ProductId,
        limit: usize,
        now_ms: u64,
    ) -> Vec<(ProductId, f64)> {
        let Some(neighbours) = self.neighbours.get(&product) else {
            return Vec::new();
        };
        let mut scored: Vec<(ProductId, f64)> = neighbours
            .iter()
            .map(|&(other, score)| (other, score.at(now_ms, self.settings.half_life_ms)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        scored
    }

    /// Users whose recent views are remembered.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    fn count_pair(&mut self, a: ProductId, b: ProductId, weight: f64, at_ms: u64) {
        debug_assert_ne!(a, b);
        self.add(a, b, weight, at_ms);
        self.add(b, a, weight, at_ms);
    }

    /// A saved score joins the list: added to the pair's score if it is there, else it
    /// takes a free place or the weakest one's if weaker than it.
    fn merge(&mut self, product: ProductId, other: ProductId, score: Score) {
        let half_life_ms = self.settings.half_life_ms;
        let neighbours_max = self.settings.neighbours_max;
        let neighbours = self.neighbours.entry(product).or_default();
        if let Some((_, mine)) = neighbours.iter_mut().find(|(id, _)| *id == other) {
            let now = mine.at_ms.max(score.at_ms);
            *mine = Score {
                value: mine.at(now, half_life_ms) + score.at(now, half_life_ms),
                at_ms: now,
            };
            return;
        }
        if neighbours.len() < neighbours_max {
            neighbours.push((other, score));
            return;
        }
        let at = score.at_ms;
        let weakest = neighbours
            .iter()
            .enumerate()
            .map(|(i, (_, kept))| (i, kept.at(at, half_life_ms)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, value)) = weakest
            && value < score.value
        {
            neighbours[i] = (other, score);
        }
    }

    fn add(&mut self, product: ProductId, other: ProductId, weight: f64, at_ms: u64) {
        let half_life_ms = self.settings.half_life_ms;
        self.changed.insert(product);
        let neighbours = self.neighbours.entry(product).or_default();
        if let Some((_, score)) = neighbours.iter_mut().find(|(id, _)| *id == other) {
            let now = at_ms.max(score.at_ms);
            *score = Score {
                value: score.at(now, half_life_ms) + weight,
                at_ms: now,
            };
            return;
        }
        if neighbours.len() < self.settings.neighbours_max {
            neighbours.push((
                other,
                Score {
                    value: weight,
                    at_ms,
                },
            ));
            return;
        }
        // Full: the newcomer takes the weakest neighbour's place and score (Space-Saving:
        // a pair counted often enough is never lost, at the price of overestimating a
        // newcomer by at most the weakest score).
        let weakest = neighbours
            .iter()
            .enumerate()
            .map(|(i, (_, score))| (i, score.at(at_ms, half_life_ms)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, value)) = weakest {
            neighbours[i] = (
                other,
                Score {
                    value: value + weight,
                    at_ms,
                },
            );
        }
    }

    /// Makes room for a new session: sessions past the gap go first, then the older half.
    fn forget_sessions(&mut self, now_ms: u64) {
        let gap = self.settings.session_gap_ms;
        self.sessions
            .retain(|_, session| now_ms.saturating_sub(session.last_at_ms) <= gap);
        if self.sessions.len() < self.settings.sessions_max {
            return;
        }
        let mut times: Vec<u64> = self.sessions.values().map(|s| s.last_at_ms).collect();
        let middle = times.len() / 2;
        let (_, &mut median, _) = times.select_nth_unstable(middle);
        self.sessions
            .retain(|_, session| session.last_at_ms > median);
    }
}

/// Several nodes' scores for one product (each counted its share of the stream), summed
/// and ranked: the cluster's answer.
pub fn sum_shares(
    shares: impl IntoIterator<Item = Vec<(ProductId, f64)>>,
    limit: usize,
) -> Vec<(ProductId, f64)> {
    let mut sums: HashMap<ProductId, f64> = HashMap::new();
    for (other, score) in shares.into_iter().flatten() {
        *sums.entry(other).or_default() += score;
    }
    let mut summed: Vec<(ProductId, f64)> = sums.into_iter().collect();
    summed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    summed.truncate(limit);
    summed
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    fn ids(recommended: &[(ProductId, f64)]) -> Vec<u64> {
        recommended.iter().map(|(id, _)| id.0).collect()
    }

    fn small() -> CoOccurrence {
        CoOccurrence::new(RecommendationSettings {
            neighbours_max: 3,
            sessions_max: 4,
            ..RecommendationSettings::default()
        })
    }

    #[test]
    fn products_bought_together_most_often_come_first_both_ways() {
        let mut counts = small();
        let p = ProductId;
        counts.bought_together(&[p(1), p(2), p(3)], 0);
        counts.bought_together(&[p(1), p(2)], 0);
        counts.bought_together(&[p(1), p(2), p(2)], 0);
        assert_eq!(ids(&counts.recommend(p(1), 10, 0)), [2, 3]);
        assert_eq!(ids(&counts.recommend(p(3), 10, 0)), [1, 2]);
        let scores = counts.recommend(p(2), 1, 0);
        assert_eq!(scores.len(), 1);
        assert!(
            (scores[0].1 - 3.0 * BOUGHT_WEIGHT).abs() < 1e-9,
            "{scores:?}"
        );
        assert!(counts.recommend(p(9), 10, 0).is_empty());
    }

    #[test]
    fn saved_lists_restore_the_same_answers_and_only_changes_are_saved_again() {
        let mut counts = small();
        let p = ProductId;
        counts.bought_together(&[p(1), p(2), p(3)], 0);
        counts.bought_together(&[p(1), p(2)], HOUR);
        let saved = counts.take_changed();
        assert_eq!(saved.len(), 3, "every product with neighbours");
        assert!(counts.take_changed().is_empty(), "nothing changed since");

        let mut restarted = small();
        restarted.restore(saved.clone());
        for product in [1, 2, 3] {
            assert_eq!(
                restarted.recommend(p(product), 10, 2 * HOUR),
                counts.recommend(p(product), 10, 2 * HOUR)
            );
        }
        // Restoring is not a change; counting after it is, and it adds to the saved scores.
        assert!(restarted.take_changed().is_empty());
        restarted.bought_together(&[p(3), p(4)], 2 * HOUR);
        let mut changed: Vec<u64> = restarted
            .take_changed()
            .iter()
            .map(|list| list.product_id.0)
            .collect();
        changed.sort_unstable();
        assert_eq!(changed, [3, 4]);
        // A save that failed is tried again with the next.
        counts.bought_together(&[p(5), p(6)], 0);
        let failed = counts.take_changed();
        counts.unsaved(&failed);
        assert_eq!(counts.take_changed().len(), 2);
    }

    #[test]
    fn views_pair_within_a_session_of_one_user_only() {
        let mut counts = small();
        let (p, u) = (ProductId, UserId);
        counts.viewed(u(1), p(1), 0);
        counts.viewed(u(1), p(2), 60_000);
        counts.viewed(u(1), p(1), 120_000); // seen again: pairs with 2 again, not itself
        counts.viewed(u(2), p(3), 130_000); // another user
        counts.viewed(u(1), p(4), 120_000 + HOUR); // after the gap: a new session
        assert_eq!(ids(&counts.recommend(p(1), 10, 0)), [2]);
        assert!(counts.recommend(p(3), 10, 0).is_empty());
        assert!(counts.recommend(p(4), 10, 0).is_empty());
    }

    #[test]
    fn neighbours_and_sessions_stay_bounded() {
        let mut counts = small();
        for n in 2..50 {
            counts.bought_together(&[ProductId(1), ProductId(n)], n);
        }
        counts.bought_together(&[ProductId(1), ProductId(7)], 60);
        counts.bought_together(&[ProductId(1), ProductId(7)], 61);
        let kept = counts.recommend(ProductId(1), 10, 100);
        assert_eq!(kept.len(), 3);
        assert_eq!(
            kept[0].0,
            ProductId(7),
            "the strongest pair survives: {kept:?}"
        );
        for user in 0..40 {
            counts.viewed(UserId(user), ProductId(1), user * 1_000);
            assert!(counts.sessions() <= 4);
        }
    }

    #[test]
    fn old_pairs_fade_behind_recent_ones() {
        let mut counts = small();
        let p = ProductId;
        let week = RecommendationSettings::default().half_life_ms;
        for _ in 0..4 {
            counts.bought_together(&[p(1), p(2)], 0);
        }
        counts.bought_together(&[p(1), p(3)], 3 * week);
        // Four purchases three half-lives ago weigh half of one today.
        assert_eq!(ids(&counts.recommend(p(1), 10, 3 * week)), [3, 2]);
        assert_eq!(ids(&counts.recommend(p(1), 10, 0)), [2, 3]);
    }

    #[test]
    fn shares_of_several_nodes_add_up() {
        let p = ProductId;
        let node_a = vec![(p(2), 3.0), (p(3), 1.0)];
        let node_b = vec![(p(3), 3.0), (p(4), 0.5)];
        assert_eq!(ids(&sum_shares([node_a, node_b], 2)), [3, 2]);
        assert!(sum_shares(Vec::<Vec<(ProductId, f64)>>::new(), 5).is_empty());
    }
}
