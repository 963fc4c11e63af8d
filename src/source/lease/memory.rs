//! An in-memory [`LeaseTable`] with DynamoDB's conditional-write semantics, for unit tests.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::table::{Checkpoint, CheckpointWrite, Lease, LeaseError, LeaseTable};

#[derive(Debug, Default)]
pub(crate) struct MemoryTable {
    items: Mutex<BTreeMap<String, Lease>>,
    /// When set, every call fails as if the table were unreachable.
    pub unreachable: std::sync::atomic::AtomicBool,
    /// When set, checkpoint writes fail as if unreachable; every other call is answered.
    pub checkpoints_fail: std::sync::atomic::AtomicBool,
}

impl MemoryTable {
    pub(crate) fn snapshot(&self) -> Vec<Lease> {
        self.items.lock().unwrap().values().cloned().collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<Lease> {
        self.items.lock().unwrap().get(key).cloned()
    }

    /// Applies a renewal that reached the table late: the counter moves on, the owner stays.
    /// Its sender timed out waiting for the answer, so its next write conflicts, as after a
    /// table outage whose queued requests are carried out once it answers again.
    pub(crate) fn apply_late_renewal(&self, key: &str) {
        if let Some(lease) = self.items.lock().unwrap().get_mut(key) {
            lease.counter += 1;
        }
    }

    fn check(&self) -> Result<(), LeaseError> {
        if self.unreachable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(LeaseError::Unavailable("the table is unreachable".into()));
        }
        Ok(())
    }

    fn update<T>(
        &self,
        key: &str,
        apply: impl FnOnce(&mut Lease) -> Result<T, ()>,
    ) -> Result<T, LeaseError> {
        self.check()?;
        let mut items = self.items.lock().unwrap();
        let conflict = || LeaseError::Conflict { key: key.into() };
        let lease = items.get_mut(key).ok_or_else(conflict)?;
        let mut changed = lease.clone();
        let out = apply(&mut changed).map_err(|()| conflict())?;
        *lease = changed;
        Ok(out)
    }
}

fn held(lease: &Lease, owner: &str, counter: u64) -> Result<(), ()> {
    if lease.owner.as_deref() == Some(owner) && lease.counter == counter {
        Ok(())
    } else {
        Err(())
    }
}

#[async_trait]
impl LeaseTable for MemoryTable {
    async fn ensure(&self) -> Result<(), LeaseError> {
        self.check()
    }

    async fn list(&self) -> Result<Vec<Lease>, LeaseError> {
        self.check()?;
        Ok(self.snapshot())
    }

    async fn create(&self, lease: &Lease) -> Result<bool, LeaseError> {
        self.check()?;
        let mut items = self.items.lock().unwrap();
        if items.contains_key(&lease.key) {
            return Ok(false);
        }
        items.insert(lease.key.clone(), lease.clone());
        Ok(true)
    }

    async fn take(&self, seen: &Lease, owner: &str, hand_off: bool) -> Result<u64, LeaseError> {
        self.update(&seen.key, |lease| {
            if lease.counter != seen.counter {
                return Err(());
            }
            if hand_off {
                lease.checkpoint_owner = lease.owner.clone();
            }
            lease.counter += 1;
            lease.owner = Some(owner.to_owned());
            lease.owner_switches += 1;
            Ok(lease.counter)
        })
    }

    async fn renew(&self, key: &str, owner: &str, counter: u64) -> Result<u64, LeaseError> {
        self.update(key, |lease| {
            held(lease, owner, counter)?;
            lease.counter += 1;
            Ok(lease.counter)
        })
    }

    async fn checkpoint(&self, write: CheckpointWrite<'_>) -> Result<(), LeaseError> {
        if self
            .checkpoints_fail
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(LeaseError::Unavailable("checkpoint writes fail".into()));
        }
        self.update(write.key, |lease| {
            held(lease, write.owner, write.counter)?;
            lease.checkpoint = write.checkpoint.clone();
            lease.owner_switches = 0;
            lease.checkpoint_owner = None;
            if !write.children.is_empty() {
                lease.children = write.children.to_vec();
            }
            Ok(())
        })
    }

    async fn hand_off(
        &self,
        key: &str,
        from: &str,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), LeaseError> {
        self.update(key, |lease| {
            if lease.checkpoint_owner.as_deref() != Some(from) {
                return Err(());
            }
            if let Some(checkpoint) = checkpoint {
                lease.checkpoint = checkpoint.clone();
                lease.owner_switches = 0;
            }
            lease.checkpoint_owner = None;
            Ok(())
        })
    }

    async fn release(&self, key: &str, owner: &str, counter: u64) -> Result<(), LeaseError> {
        self.update(key, |lease| {
            held(lease, owner, counter)?;
            lease.owner = None;
            lease.counter += 1;
            Ok(())
        })
    }
}
