//! Product id -> virtual shard.
//!
//! The shard count is fixed for the life of a deployment, and the hash is stable across
//! processes, builds and machines (FNV-1a over the id's little-endian bytes, not
//! `DefaultHasher`, whose output may change between Rust releases). So a shard is a unit
//! that a cluster can move between nodes without any caller noticing: callers route by
//! product id, placement maps shards to nodes.

/// One of the fixed virtual shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u32);

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The shard of a product, in `0..shard_count`.
pub fn shard_of(product_id: engine::ProductId, shard_count: u32) -> ShardId {
    assert!(shard_count > 0);
    let mut hash = FNV_OFFSET_BASIS;
    for byte in product_id.0.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    let shard = hash % u64::from(shard_count);
    ShardId(u32::try_from(shard).expect("below shard_count, a u32"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::ProductId;

    #[test]
    fn the_mapping_never_changes() {
        // Pinned values, computed independently from the FNV-1a definition: if these move,
        // every deployed placement table is wrong.
        assert_eq!(shard_of(ProductId(0), 256), ShardId(197));
        assert_eq!(shard_of(ProductId(1), 256), ShardId(164));
        assert_eq!(shard_of(ProductId(123_456_789), 1_024), ShardId(537));
    }

    #[test]
    fn consecutive_ids_spread_over_the_shards() {
        let shard_count = 64;
        let mut per_shard = vec![0u32; shard_count as usize];
        for id in 0..64_000 {
            per_shard[shard_of(ProductId(id), shard_count).0 as usize] += 1;
        }
        let (min, max) = (per_shard.iter().min(), per_shard.iter().max());
        assert!(min >= Some(&800) && max <= Some(&1_200), "{per_shard:?}");
    }
}
