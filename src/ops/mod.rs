//! The operations actions (backup, restore, membership changes, the dev cluster's
//! processes): one implementation each, called by the CLI verbs and by the console's
//! dialogs, reporting progress to a callback and ending with an outcome or a precise error.

pub mod backup;
pub mod backup_dir;
pub mod bundle;
pub mod check;
pub mod commands;
pub mod compact;
pub mod dev_cluster;
pub mod incident;
pub mod keys;
pub mod maintenance;
pub mod membership;
pub mod proof;
pub mod rebuild;
pub mod restart;
