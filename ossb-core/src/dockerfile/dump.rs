//! The AST printer in BuildKit's dump format (to be filled in).
