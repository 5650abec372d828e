//! Product search over a tantivy index kept in the data directory.
//!
//! Title, brand and description are tokenized text (title boosted most). Each query word
//! may be misspelled by one edit (words of 5 to 8 letters) or two (longer words), and every
//! word must match somewhere. Filters (price, rating, brand) are exact; facets (brand
//! counts, a price histogram) count every match, not just the page. Results rank by
//! relevance, then popularity.

use std::collections::BTreeMap;
use std::path::Path;

use engine::{Money, Product, ProductId};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::query::{
    BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value,
};
use tantivy::tokenizer::TokenStream;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc,
};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Boosts: a title match says most about what a shopper wants.
const TITLE_BOOST: f32 = 3.0;
const BRAND_BOOST: f32 = 2.0;
const DESCRIPTION_BOOST: f32 = 1.0;
/// Memory for the index writer's buffers.
const WRITER_MEMORY: usize = 50_000_000;
/// Words in a query at most; the rest is ignored.
pub const QUERY_WORDS_MAX: usize = 10;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    brand: Field,
    /// The brand as written, for facet counts.
    brand_exact: Field,
    /// The brand lower-cased, for the case-insensitive filter.
    brand_key: Field,
    description: Field,
    price: Field,
    rating: Field,
    popularity: Field,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchQuery {
    pub text: String,
    pub price_min: Option<Money>,
    pub price_max: Option<Money>,
    pub rating_min: Option<f32>,
    pub brand: Option<String>,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
    /// Width of a price histogram bucket, in minor units.
    pub price_interval: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    pub product_id: ProductId,
    pub score: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// Every match, over all pages.
    pub total: u64,
    /// Matches per brand, most first.
    pub brands: Vec<(String, u64)>,
    /// Matches per price bucket: (bucket start, count), cheapest first, empty buckets left out.
    pub price_histogram: Vec<(u64, u64)>,
}

/// Brand counts and price histogram of a result set.
type Facets = (Vec<(String, u64)>, Vec<(u64, u64)>);

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: std::sync::Mutex<IndexWriter>,
    fields: Fields,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        id: builder.add_u64_field("id", INDEXED | STORED | FAST),
        title: builder.add_text_field("title", TEXT),
        brand: builder.add_text_field("brand", TEXT),
        brand_exact: builder.add_text_field("brand_exact", STRING | FAST),
        brand_key: builder.add_text_field("brand_key", STRING),
        description: builder.add_text_field("description", TEXT),
        price: builder.add_u64_field("price", INDEXED | FAST),
        rating: builder.add_f64_field("rating", INDEXED | FAST),
        popularity: builder.add_u64_field("popularity", FAST),
    };
    (builder.build(), fields)
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it when missing (or when its schema is from an
    /// older version: the catalog is the truth and the index is rebuilt from it).
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir)?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)?;
        let index = match Index::open_or_create(directory, schema.clone()) {
            Ok(index) => index,
            Err(error) => {
                tracing::warn!(%error, "search index unreadable; starting a new one");
                std::fs::remove_dir_all(dir)?;
                std::fs::create_dir_all(dir)?;
                Index::create_in_dir(dir, schema)?
            }
        };
        Self::with_index(index, fields)
    }

    /// An index in memory (tests, benchmarks).
    pub fn in_memory() -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        Self::with_index(Index::create_in_ram(schema), fields)
    }

    fn with_index(index: Index, fields: Fields) -> Result<Self, SearchError> {
        let writer = index.writer(WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: std::sync::Mutex::new(writer),
            fields,
        })
    }

    /// Replaces the documents of these products (adds them if new); `removed` ids are
    /// deleted. Visible to searches once this returns.
    pub fn update(&self, products: &[&Product], removed: &[ProductId]) -> Result<(), SearchError> {
        let f = self.fields;
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for id in removed
            .iter()
            .copied()
            .chain(products.iter().map(|product| product.id))
        {
            writer.delete_term(Term::from_field_u64(f.id, id.0));
        }
        for product in products {
            writer.add_document(doc!(
                f.id => product.id.0,
                f.title => product.title.as_str(),
                f.brand => product.brand.as_str(),
                f.brand_exact => product.brand.as_str(),
                f.brand_key => product.brand.to_lowercase(),
                f.description => product.description.as_str(),
                f.price => product.price.0,
                f.rating => f64::from(product.rating),
                f.popularity => product.popularity,
            ))?;
        }
        writer.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let words = self.words(&query.text);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in &words {
            let distance = edits_for(word);
            let per_field: Vec<(Occur, Box<dyn Query>)> = [
                (f.title, TITLE_BOOST),
                (f.brand, BRAND_BOOST),
                (f.description, DESCRIPTION_BOOST),
            ]
            .into_iter()
            .map(|(field, boost)| {
                let term = Term::from_field_text(field, word);
                let matcher: Box<dyn Query> = if distance == 0 {
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))
                } else {
                    Box::new(FuzzyTermQuery::new(term, distance, true))
                };
                (
                    Occur::Should,
                    Box::new(BoostQuery::new(matcher, boost)) as Box<dyn Query>,
                )
            })
            .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(per_field))));
        }
        if query.price_min.is_some() || query.price_max.is_some() {
            let low = query.price_min.map_or(0, |price| price.0);
            let high = query.price_max.map_or(u64::MAX, |price| price.0);
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    std::ops::Bound::Included(Term::from_field_u64(f.price, low)),
                    std::ops::Bound::Included(Term::from_field_u64(f.price, high)),
                )),
            ));
        }
        if let Some(rating) = query.rating_min {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    std::ops::Bound::Included(Term::from_field_f64(f.rating, f64::from(rating))),
                    std::ops::Bound::Unbounded,
                )),
            ));
        }
        if let Some(brand) = &query.brand {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.brand_key, &brand.to_lowercase()),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if words.is_empty() {
            // Filters alone: every product that passes them.
            clauses.push((Occur::Must, Box::new(tantivy::query::AllQuery)));
        }
        let query_tree = BooleanQuery::new(clauses);
        let page = query.page.max(1) as usize;
        let page_size = query.page_size.max(1) as usize;
        let wanted = page.saturating_mul(page_size);
        // Relevance first; among equal relevance (rounded, so float noise does not decide)
        // the more popular product first.
        let ranked =
            TopDocs::with_limit(wanted).tweak_score(move |segment: &tantivy::SegmentReader| {
                let popularity = segment
                    .fast_fields()
                    .u64("popularity")
                    .ok()
                    .map(|column| column.first_or_default_col(0));
                move |doc: tantivy::DocId, score: tantivy::Score| {
                    let popularity = popularity.as_ref().map_or(0, |column| column.get_val(doc));
                    ((score * 1_000.0).round() as i64, popularity)
                }
            });
        let (top, total, matches) =
            searcher.search(&query_tree, &(ranked, Count, DocSetCollector))?;
        let hits = top
            .into_iter()
            .skip((page - 1) * page_size)
            .map(|((score, _), address)| {
                Ok(SearchHit {
                    product_id: ProductId(self.id_of(&searcher, address)?),
                    score: score as f32 / 1_000.0,
                })
            })
            .collect::<Result<Vec<_>, SearchError>>()?;
        let (brands, price_histogram) =
            self.facets(&searcher, &matches, query.price_interval.max(1))?;
        Ok(SearchResults {
            hits,
            total: total as u64,
            brands,
            price_histogram,
        })
    }

    /// Lower-cased words of the query, as the index tokenized the text fields.
    fn words(&self, text: &str) -> Vec<String> {
        let Ok(mut analyzer) = self.index.tokenizer_for_field(self.fields.title) else {
            return Vec::new();
        };
        let mut stream = analyzer.token_stream(text);
        let mut words = Vec::new();
        while stream.advance() && words.len() < QUERY_WORDS_MAX {
            words.push(stream.token().text.clone());
        }
        words
    }

    fn id_of(&self, searcher: &tantivy::Searcher, address: DocAddress) -> Result<u64, SearchError> {
        let document: TantivyDocument = searcher.doc(address)?;
        Ok(document
            .get_first(self.fields.id)
            .and_then(|value| value.as_u64())
            .unwrap_or_default())
    }

    fn facets(
        &self,
        searcher: &tantivy::Searcher,
        matches: &std::collections::HashSet<DocAddress>,
        interval: u64,
    ) -> Result<Facets, SearchError> {
        let mut brands: BTreeMap<String, u64> = BTreeMap::new();
        let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
        let mut by_segment: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for address in matches {
            by_segment
                .entry(address.segment_ord)
                .or_default()
                .push(address.doc_id);
        }
        for (segment_ord, docs) in by_segment {
            let segment = searcher.segment_reader(segment_ord);
            let prices = segment.fast_fields().u64("price")?.first_or_default_col(0);
            let brand_column = segment.fast_fields().str("brand_exact")?;
            let mut name = String::new();
            for doc in docs {
                let price = prices.get_val(doc);
                *buckets.entry(price - price % interval).or_default() += 1;
                if let Some(column) = &brand_column
                    && let Some(ordinal) = column.term_ords(doc).next()
                {
                    name.clear();
                    column.ord_to_str(ordinal, &mut name)?;
                    *brands.entry(name.clone()).or_default() += 1;
                }
            }
        }
        let mut brands: Vec<(String, u64)> = brands.into_iter().collect();
        brands.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok((brands, buckets.into_iter().collect()))
    }
}

/// Edits a word may be off by: none for short words (too many false friends), one for
/// 5 to 8 letters, two beyond.
pub fn edits_for(word: &str) -> u8 {
    match word.chars().count() {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(
        id: u64,
        title: &str,
        brand: &str,
        description: &str,
        price: u64,
        rating: f32,
        popularity: u64,
    ) -> Product {
        Product {
            id: ProductId(id),
            title: title.into(),
            brand: brand.into(),
            category: "mobiles".into(),
            description: description.into(),
            price: Money(price),
            rating,
            popularity,
            seller_id: None,
        }
    }

    fn catalog() -> Vec<Product> {
        vec![
            product(
                1,
                "Samsung Galaxy S24 Ultra",
                "Samsung",
                "flagship phone with a stylus",
                12_999_900,
                4.6,
                500,
            ),
            product(
                2,
                "Samsung Galaxy A15",
                "Samsung",
                "budget phone",
                1_499_900,
                4.1,
                900,
            ),
            product(
                3,
                "Pixel 8 Pro",
                "Google",
                "phone with the best camera, rivals the galaxy",
                9_999_900,
                4.5,
                300,
            ),
            product(
                4,
                "Galaxy Buds",
                "Samsung",
                "wireless earbuds",
                899_900,
                3.9,
                100,
            ),
            product(
                5,
                "Phone case for Samsung Galaxy",
                "Spigen",
                "rugged case",
                99_900,
                4.8,
                50,
            ),
        ]
    }

    fn index() -> SearchIndex {
        let index = SearchIndex::in_memory().expect("index");
        let products = catalog();
        let refs: Vec<&Product> = products.iter().collect();
        index.update(&refs, &[]).expect("update");
        index
    }

    fn query(text: &str) -> SearchQuery {
        SearchQuery {
            text: text.into(),
            page: 1,
            page_size: 10,
            price_interval: 1_000_000,
            ..SearchQuery::default()
        }
    }

    fn ids(results: &SearchResults) -> Vec<u64> {
        results.hits.iter().map(|hit| hit.product_id.0).collect()
    }

    #[test]
    fn typos_still_find_the_product() {
        let index = index();
        // One edit in a 6-letter word, two in a 10-letter one.
        assert!(ids(&index.search(&query("galxy")).expect("search")).contains(&1));
        assert!(ids(&index.search(&query("samsnug galaxy")).expect("search")).contains(&1));
        assert_eq!(
            ids(&index.search(&query("wirelss earbds")).expect("search")),
            [4]
        );
        // Short words must be exact.
        assert!(index.search(&query("s25")).expect("search").hits.is_empty());
    }

    #[test]
    fn title_matches_rank_before_description_matches_then_popularity() {
        let index = index();
        let results = index.search(&query("galaxy")).expect("search");
        let ranked = ids(&results);
        let pixel = ranked
            .iter()
            .position(|id| *id == 3)
            .expect("the pixel mentions galaxy");
        for title_match in [1, 2, 4, 5] {
            let position = ranked
                .iter()
                .position(|id| *id == title_match)
                .expect("found");
            assert!(
                position < pixel,
                "title match {title_match} before the description match: {ranked:?}"
            );
        }
        assert_eq!(results.total, 5);
    }

    #[test]
    fn filters_and_facets_are_exact() {
        let index = index();
        let filtered = SearchQuery {
            price_min: Some(Money(1_000_000)),
            price_max: Some(Money(13_000_000)),
            rating_min: Some(4.2),
            ..query("galaxy")
        };
        let results = index.search(&filtered).expect("search");
        let mut found = ids(&results);
        found.sort_unstable();
        assert_eq!(found, [1, 3]);
        let by_brand = SearchQuery {
            brand: Some("SAMSUNG".into()),
            ..query("galaxy")
        };
        let results = index.search(&by_brand).expect("search");
        let mut found = ids(&results);
        found.sort_unstable();
        assert_eq!(found, [1, 2, 4]);

        let everything = index.search(&query("galaxy")).expect("search");
        assert_eq!(
            everything.brands,
            [
                ("Samsung".to_owned(), 3),
                ("Google".to_owned(), 1),
                ("Spigen".to_owned(), 1)
            ]
        );
        // Buckets of 10,000.00: 0.99k and 8.99k in the first, 14.99k in the second, ...
        assert_eq!(
            everything.price_histogram,
            [(0, 2), (1_000_000, 1), (9_000_000, 1), (12_000_000, 1)]
        );
    }

    #[test]
    fn updates_replace_and_remove_documents_and_pages_split_results() {
        let index = index();
        let mut renamed = catalog().remove(3);
        renamed.title = "Galaxy Buds 3 Pro".into();
        index.update(&[&renamed], &[ProductId(5)]).expect("update");
        assert_eq!(index.len(), 4);
        assert_eq!(ids(&index.search(&query("buds pro")).expect("search")), [4]);
        assert!(!ids(&index.search(&query("galaxy")).expect("search")).contains(&5));
        let first = SearchQuery {
            page_size: 2,
            ..query("galaxy")
        };
        let second = SearchQuery {
            page: 2,
            ..first.clone()
        };
        let mut both = ids(&index.search(&first).expect("search"));
        both.extend(ids(&index.search(&second).expect("search")));
        assert_eq!(both.len(), 4);
        both.sort_unstable();
        both.dedup();
        assert_eq!(both.len(), 4, "pages do not overlap");
    }
}
