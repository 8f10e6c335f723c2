//! The request path's access to the synchronous store: a few connections,
//! each behind a mutex, used from blocking tasks so the async workers
//! never wait on the database.
//!
//! A request takes the first idle connection, or waits on one chosen
//! round-robin. A connection that failed (database restarted, connection
//! dropped) is dropped and reopened on next use; so is one whose mutex was
//! poisoned by a panic, which may have left a transaction open. Every
//! connection gets the hub's [`HashKey`] for secrets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use khien_store::{HashKey, Store};

use crate::error::{ApiError, Problem};

/// A store connection that is never closed on an async worker thread:
/// the synchronous PostgreSQL client closes by blocking on a runtime of its
/// own, which panics inside Tokio. Dropped within a runtime, the
/// connection is closed on a short-lived thread of its own.
#[derive(Debug, Default)]
pub(crate) struct OwnedStore(Option<Store>);

impl OwnedStore {
    pub fn new(store: Store) -> Self {
        Self(Some(store))
    }

    pub fn get_mut(&mut self) -> Option<&mut Store> {
        self.0.as_mut()
    }

    /// Holds `store`, returning a reference to it.
    pub fn set(&mut self, store: Store) -> &mut Store {
        self.clear();
        self.0.insert(store)
    }

    /// Closes the connection (the next use reopens one).
    pub fn clear(&mut self) {
        drop(Self(self.0.take()));
    }
}

impl Drop for OwnedStore {
    fn drop(&mut self) {
        if let Some(store) = self.0.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let closer = std::thread::Builder::new()
                .name("khien-store-close".into())
                .spawn(move || drop(store));
            if let Err(e) = closer {
                tracing::warn!(event = "hub_store_close_failed", error = %e);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StoreHandle {
    database: Arc<str>,
    hash_key: HashKey,
    conns: Arc<[Mutex<OwnedStore>]>,
    next: Arc<AtomicUsize>,
}

/// Opens a store with the hub's hash key set.
pub(crate) fn open_store(database: &str, hash_key: &HashKey) -> Result<Store, khien_store::Error> {
    let mut s = Store::open(database)?;
    s.set_hash_key(hash_key.clone());
    Ok(s)
}

impl StoreHandle {
    /// A handle over `first` and `extra` more connections opened lazily.
    pub fn new(database: &str, hash_key: HashKey, first: OwnedStore, extra: usize) -> Self {
        let conns: Vec<Mutex<OwnedStore>> = std::iter::once(Mutex::new(first))
            .chain((0..extra).map(|_| Mutex::new(OwnedStore::default())))
            .collect();
        Self {
            database: database.into(),
            hash_key,
            conns: conns.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Runs `f` on the store in a blocking task.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, khien_store::Error> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.run_blocking(f))
            .await
            .map_err(|e| ApiError::internal(&e))?
    }

    fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, khien_store::Error>,
    ) -> Result<T, ApiError> {
        let idle = self.conns.iter().find_map(|c| c.try_lock().ok());
        let mut guard = match idle {
            Some(g) => g,
            None => {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
                let conn = &self.conns[i];
                match conn.lock() {
                    Ok(g) => g,
                    Err(poisoned) => {
                        let mut g = poisoned.into_inner();
                        g.clear();
                        conn.clear_poison();
                        g
                    }
                }
            }
        };
        let store = match guard.get_mut() {
            Some(s) => s,
            None => match open_store(&self.database, &self.hash_key) {
                Ok(s) => guard.set(s),
                Err(e) => {
                    tracing::error!(event = "hub_store_open_failed", error = %e);
                    return Err(ApiError::new(
                        Problem::Unavailable,
                        "the database cannot be reached; retry later",
                    ));
                }
            },
        };
        match f(store) {
            Ok(v) => Ok(v),
            Err(e) => {
                if matches!(
                    e,
                    khien_store::Error::Postgres(_) | khien_store::Error::Sqlite(_)
                ) {
                    guard.clear();
                }
                Err(ApiError::from(e))
            }
        }
    }
}
