//! PostgreSQL roles and grants: the group roles of `db roles` and the login role of each
//! enrolled device (created, rotated with a SCRAM verifier, dropped).
