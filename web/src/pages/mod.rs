//! One page per file.

mod annotate;
mod registry;

pub use annotate::AnnotatePage;
pub use registry::RegistryPage;
pub(crate) use registry::stored_session;
