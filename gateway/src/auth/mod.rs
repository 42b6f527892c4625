//! Who is calling: staff passwords and sessions, customer visitor tokens, signed identities
//! from embedding sites.

pub mod identity;
pub mod password;
pub mod token;
