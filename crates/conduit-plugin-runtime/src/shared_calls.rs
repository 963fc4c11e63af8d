//! The calls the source and destination services answer the same way: Configure, the
//! connector's part of Teardown and the three lifecycle events, all of them [`Connector`]
//! methods. Configure errors are the user's settings (`InvalidArgument`); the others are
//! `Internal`.

use tokio::sync::RwLock;
use tonic::Status;

use super::connector::{Connector, RawConfig};
use super::status::{internal, invalid_argument};

/// A connector of either side as the services hold it: Run's tasks read through it while the
/// other calls take it exclusively.
pub(crate) type Shared<C> = std::sync::Arc<RwLock<Box<C>>>;

pub(crate) async fn configure<C: Connector + ?Sized>(
    connector: &Shared<C>,
    config: &RawConfig,
) -> Result<(), Status> {
    let mut connector = connector.write().await;
    connector
        .configure(config)
        .await
        .map_err(|e| invalid_argument(&e))
}

pub(crate) async fn teardown<C: Connector + ?Sized>(connector: &Shared<C>) -> Result<(), Status> {
    let mut connector = connector.write().await;
    connector.teardown().await.map_err(|e| internal(&e))
}

pub(crate) async fn on_created<C: Connector + ?Sized>(
    connector: &Shared<C>,
    config: &RawConfig,
) -> Result<(), Status> {
    let mut connector = connector.write().await;
    connector
        .lifecycle_on_created(config)
        .await
        .map_err(|e| internal(&e))
}

pub(crate) async fn on_updated<C: Connector + ?Sized>(
    connector: &Shared<C>,
    before: &RawConfig,
    after: &RawConfig,
) -> Result<(), Status> {
    let mut connector = connector.write().await;
    connector
        .lifecycle_on_updated(before, after)
        .await
        .map_err(|e| internal(&e))
}

pub(crate) async fn on_deleted<C: Connector + ?Sized>(
    connector: &Shared<C>,
    config: &RawConfig,
) -> Result<(), Status> {
    let mut connector = connector.write().await;
    connector
        .lifecycle_on_deleted(config)
        .await
        .map_err(|e| internal(&e))
}
