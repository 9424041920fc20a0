//! Response playbooks: definitions as data (`definition`), the networks and hosts never
//! blocked (`protected`), the runner that carries a launch out (`runner`) step by step
//! (`steps`), and blocks with a lifetime removed when it is over (`timed_blocks`).

mod definition;
mod protected;
mod runner;
mod steps;
mod timed_blocks;

pub use definition::{PlaybookDefinition, Step, load};
pub use protected::ProtectedSet;
pub use runner::{Busy, Launch, Runner};
pub use timed_blocks::{TimedBlocks, sweep_forever};
