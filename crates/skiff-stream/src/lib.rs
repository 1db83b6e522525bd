//! Kubernetes' streaming protocols, as the kubelet and kube-apiserver speak them for
//! `exec`, `attach` and `port-forward` (decision 0020):
//!
//! - [`channel`]: the WebSocket channel subprotocols (`v5`..`v2.channel.k8s.io`,
//!   `channel.k8s.io`, `base64.channel.k8s.io`), pure framing;
//! - [`spdy`]: SPDY/3.1 frames and header compression, pure framing, for kubectl up to
//!   1.29 and for port-forwarding (also tunnelled in a WebSocket by kubectl 1.31+);
//! - [`remotecommand`]: what exec means on any transport (stream numbers, options,
//!   terminal sizes, the final `Status`);
//! - [`session`] (a SPDY server connection), [`exec`] (exec/attach streams over either
//!   transport), [`portforward`] and [`wsio`]: the async adapters, with bounded queues
//!   everywhere so a slow peer back-pressures instead of growing memory.

pub mod channel;
pub mod exec;
pub mod portforward;
pub mod remotecommand;
pub mod session;
pub mod spdy;
pub mod wsio;

#[cfg(test)]
mod testrng;
