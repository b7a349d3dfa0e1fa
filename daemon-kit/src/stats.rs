//! Counters a daemon shares between its tasks and its `/health`: a cloneable handle whose
//! callers [`Stats::update`] them in a short closure and read a [`Stats::snapshot`]. A panic
//! while they were locked (a bug) only loses counts: the lock is taken back, never a reason
//! to fail a request or a task.

use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
pub struct Stats<T> {
    inner: Arc<Mutex<T>>,
}

impl<T> Clone for Stats<T> {
    fn clone(&self) -> Self {
        Stats {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Clone> Stats<T> {
    pub fn new(value: T) -> Self {
        Stats {
            inner: Arc::new(Mutex::new(value)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the counters; keep `f` to a few assignments.
    pub fn update(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.lock());
    }

    /// The counters as of now.
    pub fn snapshot(&self) -> T {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_counters_and_a_panic_loses_nothing_else() {
        let a: Stats<u64> = Stats::default();
        let b = a.clone();
        a.update(|n| *n += 2);
        let c = b.clone();
        let _ = std::thread::spawn(move || c.update(|_| panic!("a bug while counting"))).join();
        b.update(|n| *n += 1);
        assert_eq!(a.snapshot(), 3);
    }
}
