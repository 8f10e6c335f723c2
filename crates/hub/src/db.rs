//! The request path's access to the synchronous store: one connection
//! behind a mutex, used from blocking tasks so the async workers never
//! wait on the database.
//!
//! A connection that failed (database restarted, connection dropped) is
//! dropped and reopened on next use; so is one whose mutex was poisoned
//! by a panic, which may have left a transaction open. One connection
//! serialises requests — enough for a hub whose sensors send a batch a
//! minute; a pool can replace it without changing callers.

use std::sync::{Arc, Mutex};

use khien_store::Store;

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
    conn: Arc<Mutex<OwnedStore>>,
}

impl StoreHandle {
    pub fn new(database: &str, store: OwnedStore) -> Self {
        Self {
            database: database.into(),
            conn: Arc::new(Mutex::new(store)),
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
        let mut guard = match self.conn.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                g.clear();
                self.conn.clear_poison();
                g
            }
        };
        let store = match guard.get_mut() {
            Some(s) => s,
            None => match Store::open(&self.database) {
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
