//! Authentication: who a request is. Everything here is pure or local (a key file), so the
//! API server decides with objects it looks up through [`serviceaccount::ObjectLookup`].
//!
//! - [`keys`]: the ServiceAccount signing key skiff keeps in its data dir, its JWKS and
//!   the OIDC discovery document;
//! - [`serviceaccount`]: bound (TokenRequest) and legacy (Secret) ServiceAccount JWTs:
//!   claims, signing, verification, the identity they stand for;
//! - [`x509`]: the identity a verified client certificate names;
//! - [`impersonation`]: the `Impersonate-*` headers, as upstream's impersonation filter;
//! - [`bootstrap`]: bootstrap tokens (`<id>.<secret>`, kubelet TLS bootstrap);
//! - [`components`]: the identities of skiff's own components and their in-memory tokens;
//! - [`cache`]: successful token authentications kept 10 s, as upstream;
//! - [`tls`]: the server certificate verifier of the clients that skip verification;
//! - [`join`]: the cluster's shared keys sealed with the server token, for servers joining
//!   through the datastore.
//!
//! Every identity is a [`skiff_apimachinery::user::UserInfo`].

pub mod bootstrap;
pub mod cache;
pub mod components;
pub mod impersonation;
pub mod join;
pub mod keys;
pub mod serviceaccount;
pub mod tls;
pub mod x509;

pub use keys::SigningKey;
pub use serviceaccount::{ObjectLookup, TokenAuthenticator, TokenError};
