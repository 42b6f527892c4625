//! The embedded bus: one node, events handed straight to the local hub.

use super::{Bus, BusError, Event, Topic};
use crate::hub::Registry;
use async_trait::async_trait;
use std::sync::Arc;

pub struct MemoryBus {
    registry: Arc<Registry>,
}

impl MemoryBus {
    pub fn new(registry: Arc<Registry>) -> MemoryBus {
        MemoryBus { registry }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, event: Event) -> Result<(), BusError> {
        self.registry.deliver(Arc::new(event));
        Ok(())
    }

    async fn listen(&self, _topic: Topic) -> Result<(), BusError> {
        Ok(())
    }

    async fn unlisten(&self, _topic: Topic) -> Result<(), BusError> {
        Ok(())
    }

    fn ready(&self) -> bool {
        true
    }
}
