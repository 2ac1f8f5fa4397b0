//! Ports the core needs from adapters (image sources and sinks), implemented by `ossb-registry`.
