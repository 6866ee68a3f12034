//! What the tool tells: typed run summaries, `status`, and printing a report relation.

pub mod html;
pub mod print;
pub mod status;
pub mod summary;
