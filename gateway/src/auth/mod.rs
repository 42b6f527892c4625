//! Who is calling and what they may do: staff passwords and sessions, customer visitor
//! tokens, signed identities from embedding sites, the role [`permission`] matrix and the
//! [`mask`]ing of customer contact details.

pub mod identity;
pub mod mask;
pub mod password;
pub mod permission;
pub mod token;

pub use permission::{require, Permission};
