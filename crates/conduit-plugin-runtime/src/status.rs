//! Converting connector errors into gRPC statuses. Conduit shows only the status message.

use tonic::Status;

use super::connector::{error_chain, BoxError};

pub(crate) fn invalid_argument(error: &BoxError) -> Status {
    Status::invalid_argument(error_chain(error.as_ref()))
}

pub(crate) fn internal(error: &BoxError) -> Status {
    Status::internal(error_chain(error.as_ref()))
}
