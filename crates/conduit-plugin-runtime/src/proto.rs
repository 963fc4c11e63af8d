//! Generated gRPC and message types for the Conduit connector protocol (v2), OpenCDC,
//! parameter specifications, Conduit's schema service and go-plugin's host services.
#![allow(clippy::all, missing_docs)]

pub mod opencdc {
    pub mod v1 {
        tonic::include_proto!("opencdc.v1");
        /// Hand-written (see `crate::record`), so it is not generated above.
        pub use crate::record::{Metadata, Record};
    }
}

pub mod config {
    pub mod v1 {
        tonic::include_proto!("config.v1");
    }
}

pub mod schema {
    pub mod v1 {
        tonic::include_proto!("schema.v1");
    }
}

pub mod connutils {
    pub mod v1 {
        tonic::include_proto!("connutils.v1");
    }
}

pub mod connector {
    pub mod v2 {
        tonic::include_proto!("connector.v2");
    }
}

/// hashicorp/go-plugin's own services (controller, stdio, broker).
pub mod plugin {
    tonic::include_proto!("plugin");
}
