//! The parts of the CNI specification a plugin needs, independent of what the
//! plugin does: versions, the environment contract, error objects, result
//! conversion between spec versions and the command dispatcher.

pub mod conf;
pub mod env;
pub mod error;
pub mod result;
pub mod skel;
pub mod version;

pub use conf::NetConf;
pub use env::{Command, Env};
pub use error::{CniError, Code};
pub use skel::{run, Plugin};
pub use version::Version;
