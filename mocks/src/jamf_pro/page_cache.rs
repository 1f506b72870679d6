//! Rendered inventory pages, kept so that a repeated request costs a hash lookup and a reference
//! count instead of generating and serialising up to 2000 devices. A real Jamf Pro serves from
//! its database; a benchmark of a client against the mock should measure the client, not the
//! generator.
//!
//! The cache holds the pages of one epoch only: storing a page of another epoch empties it
//! first, and a lookup for another epoch misses, so a page of a past epoch is never served. It
//! holds intact pages only; the server derives faulted answers from them (or renders them
//! apart) and never stores those.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

use super::wire::Sections;
use crate::generator::DeviceKind;
use crate::plumbing::lock;

/// Default bound of the cached bodies. A whole fleet's pages at 2000 devices per page with all
/// sections take about 1.75 kB per device (87 MB for 50,000 devices, 350 MB for 200,000), so
/// this holds the largest benchmark fleet with room for a second page size or section set.
pub const DEFAULT_PAGE_CACHE_BYTES: usize = 512 << 20;

/// Bookkeeping per entry on top of the body, so that many tiny pages still count against the
/// bound.
const ENTRY_OVERHEAD: usize = 128;

/// Everything besides the epoch that changes a page's body. The `computers-inventory` versions
/// serve identical bodies, so the API version is not part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PageKey {
    pub kind: DeviceKind,
    pub page: usize,
    /// After clamping to the maximum, so `page-size=5000` and `page-size=2000` share a page.
    pub page_size: usize,
    /// Parsed, so repeated and comma-joined `section` values share a page.
    pub sections: Sections,
}

/// Size and use of the page cache, for tests and the binary's start-up report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageCacheStats {
    /// Pages held now.
    pub pages: usize,
    /// Bytes of their bodies.
    pub bytes: usize,
    /// Requests answered from the cache so far.
    pub hits: u64,
    /// Intact pages rendered so far, stored or not (short pages are rendered apart and not
    /// counted).
    pub renders: u64,
}

#[derive(Debug, Default)]
struct State {
    epoch: u32,
    pages: HashMap<PageKey, Bytes>,
    /// Bodies plus [`ENTRY_OVERHEAD`] per entry.
    charged: usize,
    body_bytes: usize,
    hits: u64,
    renders: u64,
}

#[derive(Debug)]
pub(crate) struct PageCache {
    limit: usize,
    state: Mutex<State>,
}

impl PageCache {
    pub fn new(limit: usize) -> PageCache {
        PageCache {
            limit,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The body of `key` in `epoch`, if it was rendered before.
    pub fn get(&self, epoch: u32, key: &PageKey) -> Option<Bytes> {
        let mut state = self.lock();
        if state.epoch != epoch {
            return None;
        }
        let body = state.pages.get(key).cloned()?;
        state.hits += 1;
        Some(body)
    }

    /// Counts a render, whether it ends up stored or not.
    pub fn rendered(&self) {
        self.lock().renders += 1;
    }

    /// Keeps `body` as the intact page `key` of `epoch`, dropping the pages of any other epoch.
    /// When the bound is reached, new pages are served but not kept: the pages already held
    /// are the ones a benchmark warmed up or is paging through.
    pub fn store(&self, epoch: u32, key: PageKey, body: Bytes) {
        let mut state = self.lock();
        if state.epoch != epoch {
            // The fleet moved on: nothing held is valid any more, and the memory is freed now.
            let State { hits, renders, .. } = *state;
            *state = State {
                epoch,
                hits,
                renders,
                ..State::default()
            };
        }
        let cost = body.len() + ENTRY_OVERHEAD;
        if state.pages.contains_key(&key) || state.charged + cost > self.limit {
            return;
        }
        state.charged += cost;
        state.body_bytes += body.len();
        state.pages.insert(key, body);
    }

    pub fn stats(&self) -> PageCacheStats {
        let state = self.lock();
        PageCacheStats {
            pages: state.pages.len(),
            bytes: state.body_bytes,
            hits: state.hits,
            renders: state.renders,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(page: usize) -> PageKey {
        PageKey {
            kind: DeviceKind::Mobile,
            page,
            page_size: 10,
            sections: Sections::general_only(),
        }
    }

    #[test]
    fn another_epoch_misses_and_replaces_the_pages() {
        let cache = PageCache::new(1 << 20);
        cache.store(0, key(0), Bytes::from_static(b"epoch 0"));
        assert_eq!(cache.get(0, &key(0)).as_deref(), Some(&b"epoch 0"[..]));
        assert_eq!(cache.get(1, &key(0)), None);
        cache.store(1, key(1), Bytes::from_static(b"epoch 1"));
        assert_eq!(cache.get(1, &key(0)), None, "epoch 0's page is gone");
        assert_eq!(cache.stats().pages, 1);
        assert_eq!(cache.stats().hits, 1);
    }

    #[test]
    fn a_full_cache_keeps_what_it_has() {
        let cache = PageCache::new(2 * (ENTRY_OVERHEAD + 4));
        for page in 0..3 {
            cache.store(0, key(page), Bytes::from_static(b"page"));
        }
        assert!(cache.get(0, &key(1)).is_some());
        assert_eq!(cache.get(0, &key(2)), None);
        assert_eq!(cache.stats().bytes, 8);
    }
}
