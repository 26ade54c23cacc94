//! Policy improvers.
