//! What keeps secret checks from being a way to exhaust the server.
//!
//! - A secret that verified is remembered for [`CACHE_FOR`] as an HMAC under a key made at
//!   start and never stored (not the secret, and not a digest someone holding a memory dump
//!   could test guesses against without the key), bound to the stored hash so that a
//!   rotated or disabled token stops matching at once.
//! - Uncached checks are *reserved* against two windows — the client's address and the
//!   token name — before any hashing: at most [`MAX_ATTEMPTS`] failures or checks in flight
//!   per window. A flood of bad secrets is refused with 429 before it costs a hash.
//! - Hashing (bcrypt, slow on purpose) runs at most as many at a time as there are cores,
//!   on blocking threads, so the async workers that answer `/healthz` stay free.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::AccessError;

/// How long a verified secret is remembered.
pub(crate) const CACHE_FOR: Duration = Duration::from_secs(60);
/// The window failed attempts are counted in.
const WINDOW: Duration = Duration::from_secs(60);
/// Failed (or in-flight) checks per client address, and per token name, per window.
pub(crate) const MAX_ATTEMPTS: u32 = 20;
/// Windows kept at most, per kind; expired ones are dropped first.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
    in_flight: u32,
}

impl Window {
    fn fresh() -> Window {
        Window {
            start: Instant::now(),
            failures: 0,
            in_flight: 0,
        }
    }

    fn expired(&self) -> bool {
        self.start.elapsed() >= WINDOW
    }
}

#[derive(Debug, Default)]
struct Windows {
    by_client: HashMap<IpAddr, Window>,
    by_name: HashMap<String, Window>,
}

fn window<'a, K: std::hash::Hash + Eq + Clone>(
    map: &'a mut HashMap<K, Window>,
    key: &K,
) -> &'a mut Window {
    if map.len() >= MAX_TRACKED && !map.contains_key(key) {
        map.retain(|_, w| !w.expired() || w.in_flight > 0);
    }
    let w = map.entry(key.clone()).or_insert_with(Window::fresh);
    if w.expired() && w.in_flight == 0 {
        *w = Window::fresh();
    }
    w
}

/// The guard of one process.
pub(crate) struct Guard {
    key: [u8; 32],
    verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
    windows: Mutex<Windows>,
    hashing: tokio::sync::Semaphore,
}

/// By hand: neither the key nor the cached digests are ever shown.
impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

impl Default for Guard {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Guard {
            key: rand::random(),
            verified: Mutex::default(),
            windows: Mutex::default(),
            hashing: tokio::sync::Semaphore::new(cores.clamp(1, 8)),
        }
    }
}

/// A reserved attempt; released by [`Guard::finish`].
pub(crate) struct Attempt {
    name: String,
    client: Option<IpAddr>,
}

impl Guard {
    fn digest(&self, name: &str, stored_hash: &str, secret: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        for part in [name, stored_hash, secret] {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `secret` verified against `stored_hash` within [`CACHE_FOR`].
    pub(crate) fn cached(&self, name: &str, stored_hash: &str, secret: &str) -> bool {
        let d = self.digest(name, stored_hash, secret);
        self.verified
            .lock()
            .expect("cache lock")
            .get(name)
            .is_some_and(|(c, at)| {
                crate::tokens::constant_time_eq(c, &d) && at.elapsed() < CACHE_FOR
            })
    }

    /// Remember that `secret` verified.
    pub(crate) fn remember(&self, name: &str, stored_hash: &str, secret: &str) {
        let d = self.digest(name, stored_hash, secret);
        let mut cache = self.verified.lock().expect("cache lock");
        if cache.len() >= MAX_TRACKED {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_FOR);
        }
        cache.insert(name.to_string(), (d, Instant::now()));
    }

    /// Reserve an uncached check for `name` from `client`, or refuse it when either has
    /// had too many failures (or checks in flight) in the window.
    pub(crate) fn reserve(
        &self,
        name: &str,
        client: Option<IpAddr>,
    ) -> Result<Attempt, AccessError> {
        let mut w = self.windows.lock().expect("limiter lock");
        let mut retry = None;
        let name_key = name.to_string();
        for win in [
            Some(*window(&mut w.by_name, &name_key)),
            client.map(|c| *window(&mut w.by_client, &c)),
        ]
        .into_iter()
        .flatten()
        {
            if win.failures + win.in_flight >= MAX_ATTEMPTS {
                let left = WINDOW.saturating_sub(win.start.elapsed()).as_secs().max(1);
                retry = Some(retry.map_or(left, |r: u64| r.max(left)));
            }
        }
        if let Some(retry_after_secs) = retry {
            return Err(AccessError::TooManyAttempts { retry_after_secs });
        }
        window(&mut w.by_name, &name_key).in_flight += 1;
        if let Some(c) = client {
            window(&mut w.by_client, &c).in_flight += 1;
        }
        Ok(Attempt {
            name: name_key,
            client,
        })
    }

    /// End a reserved check; a failure counts against both windows.
    pub(crate) fn finish(&self, attempt: Attempt, ok: bool) {
        let mut w = self.windows.lock().expect("limiter lock");
        let end = |win: Option<&mut Window>| {
            if let Some(win) = win {
                win.in_flight = win.in_flight.saturating_sub(1);
                if !ok {
                    win.failures += 1;
                }
            }
        };
        end(w.by_name.get_mut(&attempt.name));
        if let Some(c) = attempt.client {
            end(w.by_client.get_mut(&c));
        }
    }

    /// Run a slow secret check with at most one per core at a time.
    pub(crate) async fn hash_check<F>(&self, check: F) -> Result<bool, AccessError>
    where
        F: FnOnce() -> bool + Send + 'static,
    {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| AccessError::Internal(e.to_string()))?;
        tokio::task::spawn_blocking(check)
            .await
            .map_err(|e| AccessError::Internal(format!("the secret check failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_client_and_per_name() {
        let g = Guard::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..MAX_ATTEMPTS {
            let a = g.reserve("t", Some(ip)).unwrap();
            g.finish(a, false);
        }
        assert!(matches!(
            g.reserve("t", Some(ip)),
            Err(AccessError::TooManyAttempts { .. })
        ));
        // The same client on another token is refused too (its address is over the limit)…
        assert!(g.reserve("other", Some(ip)).is_err());
        // …and the token from another address (the name is over the limit).
        assert!(g.reserve("t", Some("10.0.0.2".parse().unwrap())).is_err());
        // Another token from another address is fine.
        assert!(
            g.reserve("other", Some("10.0.0.2".parse().unwrap()))
                .is_ok()
        );
    }

    #[test]
    fn checks_in_flight_count_until_they_finish() {
        let g = Guard::default();
        let ip: IpAddr = "10.0.0.3".parse().unwrap();
        let held: Vec<_> = (0..MAX_ATTEMPTS)
            .map(|_| g.reserve("t", Some(ip)).unwrap())
            .collect();
        assert!(g.reserve("t", Some(ip)).is_err());
        for a in held {
            g.finish(a, true);
        }
        // Successes do not count.
        assert!(g.reserve("t", Some(ip)).is_ok());
    }

    #[test]
    fn the_cache_is_keyed_and_bound_to_the_stored_hash() {
        let g = Guard::default();
        g.remember("t", "hash-1", "secret");
        assert!(g.cached("t", "hash-1", "secret"));
        assert!(!g.cached("t", "hash-1", "wrong"));
        assert!(
            !g.cached("t", "hash-2", "secret"),
            "a rotated hash must not match"
        );
        assert!(!g.cached("u", "hash-1", "secret"));
        // Another process (another key) would not match the same digest.
        let other = Guard::default();
        assert!(!other.cached("t", "hash-1", "secret"));
    }
}
