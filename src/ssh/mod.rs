//! SSH transport on russh: verified connections, streamed exec, atomic file writes.
//!
//! One [`Connection`] per host is opened once and reused for every step of a run; each
//! operation opens its own channel on it, so a log tail can run while a restart runs.

pub mod budget;
pub mod connect;
pub mod endpoint;
pub mod error;
pub mod exec;
pub mod file_scripts;
pub mod files;
pub mod fleet;
#[cfg(test)]
pub(crate) mod hostile;
pub mod known_hosts;
pub mod lines;
pub mod passphrase;
pub mod pool;
pub mod quote;
pub mod shell_lex;
pub mod ssh_config;
pub mod stream;
pub(crate) mod verifier;

pub use connect::Connection;
pub use endpoint::Endpoint;
pub use error::SshError;
pub use exec::{Output, Stream};
pub use file_scripts::WriteOptions;
pub use files::{sha256_hex, RemoteFile};
pub use stream::{tail_file_command, Chunk, ChunkSender, LineStream, StreamHandle};
